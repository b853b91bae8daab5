import sys

from bulksync.app.cli import main

sys.exit(main())
