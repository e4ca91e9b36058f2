"""Any `a2sb` command with the model's band gain table applied but band replication's cap left out.

Restoration's default band level "cap" raises the regenerated band by the model's band gain table, then
lowers it wherever it comes out louder than band replication's. This script runs a command with the
gain alone (band level "match" with its bounds set to 0 dB), to measure how much the cap takes away:

    python experiments/band_gain_only.py bench quality data/heldout_clips --task bwe --cutoff 4000 \
        --max-seconds 8 --methods a2sb --band-level match --json runs/scores/nocap_ho_bwe4000.json
"""

from __future__ import annotations

import sys

import a2sb.restorer


def main() -> int:
    a2sb.restorer.BAND_LEVEL_DB = (0.0, 0.0)  # "match" with no room: the gain table only
    from a2sb.cli import main as cli

    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
