"""DR drills with evidence: `sitectl drill --to SITE [--failback]`.

    run.run_drill(topo, DrillOptions(...)) → DrillRecord     (talks to the servers)
    measure.verdict(record) → Verdict                         (pure: RTO, RPO, pass/fail)
    report.write_reports(record, directory) → ReportPaths     (report.html/.json, junit.xml)
    history.history(directory) → [Entry]                      (past drills, newest first)

`canaries` writes and finds the canary data (SMTP/IMAP, LDAP, S3), `writeprobe` is the
client that keeps writing through the cutover, `verify` the end-to-end checks at the new
site, `timeline` the geometry of the report's chart, `junit` the CI view.
"""
