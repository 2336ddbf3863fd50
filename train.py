"""Thin entry point: `python train.py stage=codec|speaker|s2s` (logic in telugu_s2s.train)."""

from telugu_s2s.train import main

if __name__ == "__main__":
    main()
