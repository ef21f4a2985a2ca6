import sys

from sepconv.cli.main import main

sys.exit(main())
