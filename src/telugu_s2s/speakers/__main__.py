import sys

from telugu_s2s.speakers.cli import main

sys.exit(main())
