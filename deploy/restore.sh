#!/bin/sh
# Restores the tiaochu database from one of its Litestream replicas into a fresh state
# directory: the restore step of the runbook (deploy/README.md §九), and the very script the
# restore drill (deploy/restore-drill.sh) runs.
#
#   restore.sh s3      # from the bucket (litestream-s3.yml)
#   restore.sh file    # from the file replica (litestream-file.yml), when the bucket is out of reach
#
# The service and both litestream@ units must be stopped first. The database's directory must
# hold no database (move a damaged directory aside, never overwrite it): the restore writes
# $TIAOCHU_DB there, checks it with SQLite's full integrity check, and gives the directory to
# $RUN_AS. Settings: /etc/tiaochu/litestream.env ($LITESTREAM_ENV), the configurations in
# /etc/tiaochu ($CONF_DIR), the litestream binary ($LITESTREAM).
set -eu
replica=${1:?usage: restore.sh s3|file}
LITESTREAM_ENV=${LITESTREAM_ENV:-/etc/tiaochu/litestream.env}
CONF_DIR=${CONF_DIR:-/etc/tiaochu}
LITESTREAM=${LITESTREAM:-/opt/litestream/bin/litestream}
RUN_AS=${RUN_AS:-tiaochu}
set -a
. "$LITESTREAM_ENV"
set +a
dir=$(dirname "$TIAOCHU_DB")
if [ -e "$TIAOCHU_DB" ]; then
  echo "错误：$TIAOCHU_DB 已存在。恢复只写入空目录：先停止服务，把原目录改名留存（mv $dir $dir.bad-日期），再运行本脚本。" >&2
  exit 1
fi
install -d -m 0750 "$dir"
"$LITESTREAM" restore -config "$CONF_DIR/litestream-$replica.yml" -integrity-check full \
  -o "$TIAOCHU_DB" "$TIAOCHU_DB"
chown -R "$RUN_AS:" "$dir"
echo "已从 $replica 副本恢复到 $TIAOCHU_DB（完整性检查：通过）"
