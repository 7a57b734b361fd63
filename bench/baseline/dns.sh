#!/bin/sh
# P2 baseline: repoint the mail record of each zone with plain nsupdate + TSIG, one signed
# update per zone sent to the zone's primary, all zones at once (as sitectl runs its DNS
# group in parallel).
#
#   bench/baseline/dns.sh NEW_ADDRESS ZONE PRIMARY:PORT KEY_FILE [ZONE PRIMARY:PORT KEY_FILE ...]
# e.g. bench/baseline/dns.sh 127.0.2.1 lab.internal. 127.0.1.1:53 DIR/secrets/lab-internal-ddns.key
set -eu
address=$1
shift
pids=""
while [ $# -ge 3 ]; do
    nsupdate -k "$3" <<END &
server ${2%:*} ${2##*:}
zone $1
update delete mail.$1 A
update add mail.$1 30 A $address
send
END
    pids="$pids $!"
    shift 3
done
status=0
for pid in $pids; do
    wait "$pid" || status=1
done
exit $status
