import sys

from ffpt.cli import main

sys.exit(main())
