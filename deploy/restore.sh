#!/bin/sh
# Restores the tiaochu database into a fresh state directory from one of its two replicas: the
# restore step of the runbook (deploy/README.md §九), and the very script the restore drill
# (deploy/restore-drill.sh) runs.
#
#   restore.sh s3      # from the bucket (litestream.yml): the usual way
#   restore.sh file    # from the file replica tiaochu-litestream-standby.service keeps, when
#                      # the bucket cannot be reached; stop that unit first
#
# Stop the service and tiaochu-litestream.service first. The database's directory must hold no
# database (move a damaged directory aside, never overwrite it). The restored file is checked with
# SQLite's full integrity check and the directory is given to $RUN_AS. Settings:
# /etc/tiaochu/litestream.env ($LITESTREAM_ENV), /etc/tiaochu/litestream.yml ($LITESTREAM_CONFIG),
# the binaries ($LITESTREAM, $TIAOCHU).
set -eu
replica=${1:-}
LITESTREAM_ENV=${LITESTREAM_ENV:-/etc/tiaochu/litestream.env}
LITESTREAM_CONFIG=${LITESTREAM_CONFIG:-/etc/tiaochu/litestream.yml}
LITESTREAM=${LITESTREAM:-/opt/litestream/bin/litestream}
TIAOCHU=${TIAOCHU:-/usr/local/bin/tiaochu}
RUN_AS=${RUN_AS:-tiaochu}
set -a
. "$LITESTREAM_ENV"
set +a
dir=$(dirname "$TIAOCHU_DB")
if [ -e "$TIAOCHU_DB" ]; then
  echo "错误：$TIAOCHU_DB 已存在。恢复只写入空目录：先停止服务，把原目录改名留存（mv $dir $dir.bad-日期），再运行本脚本。" >&2
  exit 1
fi
case "$replica" in
  s3)
    install -d -m 0750 "$dir"
    "$LITESTREAM" restore -config "$LITESTREAM_CONFIG" -integrity-check full -o "$TIAOCHU_DB" "$TIAOCHU_DB"
    ;;
  file)
    # The follower's copy; previous.db when its last start could not reach the bucket.
    standby="$LITESTREAM_FILE_REPLICA/tiaochu.db"
    if [ ! -s "$standby" ]; then
      standby="$LITESTREAM_FILE_REPLICA/previous.db"
    fi
    if [ ! -s "$standby" ]; then
      echo "错误：文件副本目录 $LITESTREAM_FILE_REPLICA 中没有 tiaochu.db 或 previous.db。" >&2
      exit 1
    fi
    install -d -m 0750 "$dir"
    cp "$standby" "$TIAOCHU_DB"
    # The full integrity check, by the service's own backup command: a checked copy of the
    # restored file, deleted afterwards (it fails, and so does this script, on any damage).
    TIAOCHU_STORE__PATH="$TIAOCHU_DB" "$TIAOCHU" backup "$dir/restore-check.db" >/dev/null
    rm -f "$dir/restore-check.db"
    ;;
  *)
    echo "用法：restore.sh s3|file" >&2
    exit 2
    ;;
esac
chown -R "$RUN_AS:" "$dir"
echo "已从 $replica 副本恢复到 $TIAOCHU_DB（完整性检查：通过）"
