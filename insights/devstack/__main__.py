"""``python -m insights.devstack``: start the dev-stack servers, run the conformance checks on
them and print the Tansu quirk figures (see :func:`insights.devstack.conformance.main`)."""

import sys

from insights.devstack.conformance import main

sys.exit(main())
