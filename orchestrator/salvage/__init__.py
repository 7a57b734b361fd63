"""Salvage before a reprotect: what the old site accepted that the active site lacks.

A reprotect reverses the mirrors, and the old site's copy of each volume is moved aside
(btrfs) or rolled back (ONTAP resync); the old site's buckets are overwritten where the
active site's differ. Whatever the old site acknowledged after the last common point (a
split: it took writes its mirror never carried, or after the new site took over) would
be dropped without a word. Before that happens sitectl lists it by identity, not by
time: mail by Message-ID, objects by key and ETag, LDAP entries by entryCSN.

- `divergence`: pure: the diff of two listings, de-duplication, where a salvaged object
  goes, which LDAP changes to report, and whether the reprotect may go on;
- `maildir`: reading Message-IDs out of Maildirs and copying a message into one;
- `objects`: listing and copying S3 objects (boto3 through adapters/s3);
- `directory`: the LDAP entries a master changed since a CSN (ldap3).
"""
