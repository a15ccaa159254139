#!/bin/sh
# Online backup of the tiaochu database: `tiaochu backup` copies with VACUUM INTO while the
# service runs and checks the copy with PRAGMA integrity_check (it exits non-zero and deletes the
# copy if the check fails). Keeps the newest $KEEP_DAYS days of copies.
set -eu
DB_DIR=${DB_DIR:-/var/lib/tiaochu}
BACKUP_DIR=${BACKUP_DIR:-/var/backups/tiaochu}
KEEP_DAYS=${KEEP_DAYS:-30}
mkdir -p "$BACKUP_DIR"
dest="$BACKUP_DIR/tiaochu-$(date +%Y%m%d-%H%M%S).db"
TIAOCHU_STORE__PATH="$DB_DIR/tiaochu.db" /usr/local/bin/tiaochu backup "$dest"
find "$BACKUP_DIR" -name 'tiaochu-*.db' -type f -mtime +"$KEEP_DAYS" -delete
