"""`python -m a2sb.train CONFIG [...]` (e.g. `torchrun --nproc_per_node 8 -m a2sb.train CONFIG`): the
`a2sb train` command. The training code is the a2sb.training package."""

import sys

from .cli.training import main

if __name__ == "__main__":
    sys.exit(main())
