"""The ``chatledger`` command line: inspect, audit, replay, export and import session logs."""
