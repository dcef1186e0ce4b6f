import sys

from medrag.cli import main

sys.exit(main())
