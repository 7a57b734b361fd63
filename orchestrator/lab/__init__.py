"""The sitectl lab: two datacenters and a witness of real servers on loopback.

`sitectl lab up` (or `python -m orchestrator.lab up`) starts every server below as a
detached process, records its PID in the state dir and waits until a real client gets a
real answer from each. Nothing is installed; addresses stay inside 127.0.0.0/8.

Address and port map (fixed; `layout.py` is the single source):

    site     service ip  ZooKeeper (client; peer)  DNS (named)     LDAP (slapd, :389)
    dc1      127.0.1.1   :2181; :2888/:3888         :53, rndc :953  127.0.1.11, 127.0.1.12
    dc2      127.0.2.1   :2181; :2888/:3888         :53, rndc :953  127.0.2.11, 127.0.2.12
    witness  127.0.3.1   :2181; :2888/:3888         :53, rndc :953  -

    site     S3 (s3store)        SMTP (Postfix)     IMAP (Dovecot)    volume
    dc1      127.0.1.21:9000     127.0.1.1:2525     127.0.1.1:1143    <state>/dc1/volume
    dc2      127.0.2.21:9000     127.0.2.1:2525     127.0.2.1:1143    <state>/dc2/volume

- ZooKeeper: ids 1, 2, 3 = dc1, dc2, witness; tickTime 500 ms.
- DNS: `lab.internal.` primary dc1, secondary dc2; `example.test.` primary witness (the
  "DNS provider"), secondaries dc1 and dc2. `mail.<zone>` A → 127.0.1.1 (dc1 active).
  TSIG hmac-sha256 keys: `<zone>-ddns` (updates), `lab-xfer` (NOTIFY/transfers),
  `rndc-<site>`; the service ips are added to `lo` (named only binds configured ones).
- LDAP: suffix dc=example,dc=test, admin cn=admin,dc=example,dc=test; serverIDs 1 to 4
  in the order above; StartTLS with the lab CA (<state>/pki/ca.crt).
- Mail: alice@example.test (login `alice`); only the active site's app runs.

State dir (default $SITECTL_LAB_DIR or ./.lab): state.json (what runs, by PID),
secrets/ (0600 keys and passwords), pki/, topology.yaml, and one directory per site and
component with its config, data and log. `sitectl lab env --json` lists it all.
"""
