#!/bin/sh
# The file replica (tiaochu-litestream-standby.service): Litestream follows the bucket of
# litestream.yml into $LITESTREAM_FILE_REPLICA/tiaochu.db, within 200 ms of the bucket.
#
# Litestream 0.5.17 resumes a follow only while the copy's position is not past the bucket's
# latest snapshot, which after the day's first change it always is, so every start makes a
# fresh copy. The copy there is complete whenever it exists (Litestream renames it into place),
# so it is kept as previous.db first: when the bucket cannot be reached the restart fails and
# retries, and previous.db still holds everything followed until then (restore.sh file takes it
# when tiaochu.db is missing).
set -eu
LITESTREAM=${LITESTREAM:-/opt/litestream/bin/litestream}
LITESTREAM_CONFIG=${LITESTREAM_CONFIG:-/etc/tiaochu/litestream.yml}
copy=$LITESTREAM_FILE_REPLICA/tiaochu.db
if [ -e "$copy" ]; then
  mv -f "$copy" "$LITESTREAM_FILE_REPLICA/previous.db"
  rm -f "$copy-txid"
fi
exec "$LITESTREAM" restore -f -follow-interval 200ms -config "$LITESTREAM_CONFIG" -o "$copy" "$TIAOCHU_DB"
