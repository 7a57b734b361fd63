"""The controller: a daemon per site and on the witness that probes the active site,
publishes what it sees, and, when elected leader, decides once per cycle on one snapshot
whether to promote the standby (see `decision`)."""
