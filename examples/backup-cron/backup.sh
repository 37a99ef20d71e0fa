#!/bin/bash
# A nightly backup run as a prisn cron job: it archives SOURCE into
# BACKUP_DIR under a dated name and keeps the newest KEEP archives. The
# database password comes from a prisn secret (--secret db), never from the
# command line or a file beside the script; prisn's --timeout stops a backup
# that hangs.
set -euo pipefail

source_dir=${SOURCE:?set SOURCE to the folder to back up}
backup_dir=${BACKUP_DIR:?set BACKUP_DIR to where archives go}
keep=${KEEP:-7}
: "${DB_PASSWORD:?the db secret is missing: prisn cron ... --secret db}"

mkdir -p "$backup_dir"
archive="$backup_dir/backup-$(date -u +%Y%m%dT%H%M%SZ)-$$.tar.gz"
tar -czf "$archive" -C "$source_dir" .
echo "wrote $(basename "$archive") ($(stat -c %s "$archive") bytes) as $DB_USER"

# Keep the newest $keep archives.
ls -1t "$backup_dir"/backup-*.tar.gz | tail -n +"$((keep + 1))" | xargs -r rm --
echo "$(ls -1 "$backup_dir"/backup-*.tar.gz | wc -l) archive(s) kept"
