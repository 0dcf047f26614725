import sys

from asrtune.cli import main

sys.exit(main())
