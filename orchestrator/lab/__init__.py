"""The sitectl lab: two datacenters and a witness of real servers, each site a network
namespace joined to the others through a WAN router that can cut any link.

`sitectl lab up` (or `python -m orchestrator.lab up`) makes the networks (`netns.py`),
starts every server below in its site's namespace as a detached process, records its PID
in the state dir and waits until a real client gets a real answer from each. Nothing is
installed; every address is in 198.18.0.0/15, routed nowhere but inside the lab.

Address and port map (fixed; `layout.py` is the single source; docs/lab.md draws it):

    site     service ip  ZooKeeper (client; peer)  DNS (named)     LDAP (slapd, :389)
    dc1      198.18.1.1  :2181; :2888/:3888         :53, rndc :953  198.18.1.11, .12
    dc2      198.18.2.1  :2181; :2888/:3888         :53, rndc :953  198.18.2.11, .12
    witness  198.18.3.1  :2181; :2888/:3888         :53, rndc :953  -

    site     S3 (s3store)        SMTP; SMTPS (Postfix)   IMAP; IMAPS (Dovecot)   volume
    dc1      198.18.1.21:9000    198.18.1.1:2525; :4465  198.18.1.1:1143; :1993  <state>/dc1/volume
    dc2      198.18.2.21:9000    198.18.2.1:2525; :4465  198.18.2.1:1143; :1993  <state>/dc2/volume

    sshd on :22 of every site address; controllers (when started) on .1:9400;
    the operator ("ops") at 198.18.0.1, the router at .254 of every network.

- ZooKeeper: ids 1, 2, 3 = dc1, dc2, witness; tickTime 500 ms.
- DNS: `lab.internal.` primary dc1, secondary dc2; `example.test.` primary witness (the
  "DNS provider"), secondaries dc1 and dc2. `mail.<zone>` A → 198.18.1.1 (dc1 active).
  TSIG hmac-sha256 keys: `<zone>-ddns` (updates), `lab-xfer` (NOTIFY/transfers),
  `rndc-<site>`.
- LDAP: suffix dc=example,dc=test, admin cn=admin,dc=example,dc=test; serverIDs 1 to 4
  in the order above; StartTLS with the lab CA (<state>/pki/ca.crt).
- Mail: alice@example.test (login `alice`); only the active site's app runs. TLS with
  the lab CA: STARTTLS on :2525 (offered) and :1143 (required before a login), TLS from
  the first byte on :4465 and :1993.

State dir (default $SITECTL_LAB_DIR or ./.lab): state.json (what runs, by PID, and which
namespaces and links exist), secrets/ (0600 keys and passwords, SSH keys), pki/,
topology.yaml and hosts.yml (self-contained), and one directory per site and component
with its config, data and log. `sitectl lab env --json` lists it all.
"""
