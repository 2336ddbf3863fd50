"""telugu-s2s: full-duplex Telugu speech-to-speech."""

__version__ = "0.1.0"
