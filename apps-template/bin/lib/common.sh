# Shared helpers for the notes app's bin/ scripts. Sourced, never run.
# Every script runs with cwd = the app folder and the DEPLOY_* environment described in
# docs/sample-app.md. Nothing here prints secrets: passwords travel by stdin or 0600 files.

readonly EXIT_SKIPPED=75

# Scripts cd into DEPLOY_APP_DIR before sourcing this file.
APP_DIR="$PWD"
APP_NAME="${DEPLOY_APP:-$(basename "$APP_DIR")}"
SCRIPT_NAME="$(basename "$0")"
# Per-app runtime state (pid files, borg cache) lives outside the app folder, so copying or
# streaming the folder never carries stale pids along.
STATE_DIR="${DEPLOY_APP_STATE_DIR:-$APP_DIR/.state}"
RUN_DIR="$STATE_DIR/run"
SUPERVISOR_PID_FILE="$RUN_DIR/supervisor.pid"
APP_PID_FILE="$RUN_DIR/app.pid"
# bin/maintenance on creates it, the app answers 503 while it exists (kept across restarts, never migrated).
MAINTENANCE_FILE="$STATE_DIR/maintenance"

say() { printf '%s: %s\n' "$APP_NAME/$SCRIPT_NAME" "$*" >&2; }
debug() { [[ "${DEPLOY_LOG_LEVEL:-info}" == debug ]] && say "$*"; return 0; }
die() { say "error: $*"; exit 1; }
skip() { say "$*"; exit "$EXIT_SKIPPED"; }
is_dry_run() { [[ "${DEPLOY_DRY_RUN:-0}" == 1 || "${DEPLOY_DRY_RUN:-}" == true ]]; }
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (looked in PATH=$PATH): install it, then re-run"
  done
}

# Prints the value of KEY from a KEY=value file (no shell evaluation), or $3 when absent.
env_file_get() {
  local file="$1" key="$2" fallback="${3-}" line name value found=""
  if [[ -r "$file" ]]; then
    while IFS= read -r line || [[ -n "$line" ]]; do
      line="${line#"${line%%[![:space:]]*}"}"
      [[ -z "$line" || "$line" == \#* || "$line" != *=* ]] && continue
      name="${line%%=*}"; name="${name#export }"; name="${name%"${name##*[![:space:]]}"}"
      [[ "$name" == "$key" ]] || continue
      value="${line#*=}"; value="${value#"${value%%[![:space:]]*}"}"; value="${value%"${value##*[![:space:]]}"}"
      if [[ ${#value} -ge 2 && ( "$value" == \"*\" || "$value" == \'*\' ) ]]; then value="${value:1:${#value}-2}"; fi
      found=1
    done <"$file"
  fi
  if [[ -n "$found" ]]; then printf '%s\n' "$value"; else printf '%s\n' "$fallback"; fi
}

# Looks a setting up the way the app does: secrets/app.env, then config/app.env, then $3.
setting() {
  local value
  value="$(env_file_get "$APP_DIR/secrets/app.env" "$1" "")"
  [[ -n "$value" ]] || value="$(env_file_get "$APP_DIR/config/app.env" "$1" "${2-}")"
  printf '%s\n' "$value"
}

# --- app.yaml readers -------------------------------------------------------------------
# deploy passes DEPLOY_DB_NAME, but not the volume list or the roles; read them from app.yaml so
# that copying the folder and editing app.yaml is all a new app needs. These handle the block
# style the template uses (and `roles: [a, b]`); keep app.yaml in that style or set
# NOTES_VOLUMES / NOTES_DB_ROLE in config/app.env.
_yaml_block() { # prints the indented lines of a top-level key
  awk -v key="$1" '
    $0 ~ "^" key ":" { inside = 1; next }
    inside && /^[^[:space:]#]/ { inside = 0 }
    inside { sub(/[[:space:]]+#.*$/, ""); print }
  ' "$APP_DIR/app.yaml"
}
_unquote() { sed -E "s/^[[:space:]]*[\"']?//; s/[\"']?[[:space:]]*\$//"; }

# Prints each volume path (relative to the app folder), one a line.
manifest_volume_paths() {
  local configured
  configured="$(env_file_get "$APP_DIR/config/app.env" NOTES_VOLUMES "")"
  if [[ -n "$configured" ]]; then tr ' ,' '\n\n' <<<"$configured" | sed '/^$/d'; return; fi
  _yaml_block volumes | sed -nE 's/^[[:space:]]*(-[[:space:]]+)?path:[[:space:]]*(.*)$/\2/p' | _unquote
}

# Prints the role the app logs in as: the first of database.roles.
manifest_db_role() {
  local configured block
  configured="$(env_file_get "$APP_DIR/config/app.env" NOTES_DB_ROLE "")"
  if [[ -n "$configured" ]]; then printf '%s\n' "$configured"; return; fi
  block="$(_yaml_block database)"
  if grep -qE '^[[:space:]]*roles:[[:space:]]*\[' <<<"$block"; then
    sed -nE 's/^[[:space:]]*roles:[[:space:]]*\[([^],]*).*/\1/p' <<<"$block" | _unquote
  else
    awk '/^[[:space:]]*roles:/ { inside = 1; next } inside && /^[[:space:]]*-/ { sub(/^[[:space:]]*-[[:space:]]*/, ""); print; exit } inside && /:/ { exit }' <<<"$block" | _unquote
  fi
}

# Prints the database name: DEPLOY_DB_NAME, else database.name from app.yaml.
manifest_db_name() {
  if [[ -n "${DEPLOY_DB_NAME:-}" ]]; then printf '%s\n' "$DEPLOY_DB_NAME"; return; fi
  _yaml_block database | sed -nE 's/^[[:space:]]+name:[[:space:]]*(.*)$/\1/p' | head -n 1 | _unquote
}

# These scripts speak PostgreSQL only; refuse clearly if app.yaml was changed to another kind.
check_db_kind() {
  [[ -z "${DEPLOY_DB_KIND:-}" || "$DEPLOY_DB_KIND" == postgres ]] ||
    die "database.kind is $DEPLOY_DB_KIND but these bin/ scripts handle postgres only: adapt bin/install, bin/backup and bin/restore"
}

# Fails unless $1 is a plain SQL identifier (we interpolate names into SQL, never passwords).
check_identifier() {
  [[ "$1" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "'$1' is not a plain lower-case SQL identifier: fix database.name/roles in app.yaml"
}

# --- process state ----------------------------------------------------------------------
# Prints the supervisor's process group id if the app is running, else returns 1. The group
# id is the supervisor pid (setsid); a group counts as ours only if one of its processes runs
# from this app folder, so a recycled pid never makes us signal a stranger.
running_group() {
  local pgid
  [[ -r "$SUPERVISOR_PID_FILE" ]] || return 1
  pgid="$(tr -dc '0-9' <"$SUPERVISOR_PID_FILE")"
  [[ -n "$pgid" ]] || return 1
  kill -0 -- "-$pgid" 2>/dev/null || return 1
  pgrep -a -g "$pgid" 2>/dev/null | grep -qF -- "$APP_DIR/" || return 1
  printf '%s\n' "$pgid"
}

# Succeeds while process group $1 has a live (non-zombie) member. A zombie counts as gone: the
# supervisor is reparented to PID 1 when bin/start exits, and some inits reap it only later.
group_alive() {
  local pid line
  for pid in $(pgrep -g "$1" 2>/dev/null); do
    line="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
    line="${line##*) }"
    [[ "${line%% *}" != Z ]] && return 0
  done
  return 1
}

# Prints the address the app listens on and the URL deploy (and curl) reach it at.
app_port() { setting PORT "${DEPLOY_PORT:-8080}"; }
app_bind_address() { setting BIND_ADDRESS "${DEPLOY_HOST_ADDRESS:-127.0.0.1}"; }
app_base_url() {
  local address
  address="$(app_bind_address)"
  [[ "$address" == 0.0.0.0 || "$address" == "::" ]] && address=127.0.0.1
  [[ "$address" == *:* ]] && address="[$address]"
  printf 'http://%s:%s\n' "$address" "$(app_port)"
}

# --- PostgreSQL (admin side: the host's PGHOST/PGPORT/PGUSER) ------------------------------
admin_psql() { PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# Creates the app role (or resets its password to the secret) and the database it owns.
# Idempotent. The password goes to psql on stdin, never argv.
ensure_database() {
  local db_name="$1" role="$2" password escaped
  password="$(setting DB_PASSWORD "")"
  [[ -n "$password" ]] || die "DB_PASSWORD is missing in secrets/app.env: run bin/install to generate it"
  escaped="${password//\'/\'\'}"
  admin_psql -d postgres <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role')
\gexec
ALTER ROLE "$role" WITH LOGIN PASSWORD '$escaped';
SELECT format('CREATE DATABASE %I OWNER %I', '$db_name', '$role') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db_name')
\gexec
ALTER DATABASE "$db_name" OWNER TO "$role";
SQL
}

# --- Borg ---------------------------------------------------------------------------------
# Exports BORG_REPO and friends. The passphrase reaches borg through BORG_PASSCOMMAND reading
# the 0600 secret file: never argv, never this process's environment.
setup_borg() {
  [[ -n "${DEPLOY_BORG_REPO:-}" ]] || die "DEPLOY_BORG_REPO is not set: run this through deploy, or export it"
  export BORG_REPO="$DEPLOY_BORG_REPO"
  local passphrase_file="$APP_DIR/secrets/borg.pass"
  if [[ -s "$passphrase_file" ]]; then
    # borg splits BORG_PASSCOMMAND like a shell: quote the path.
    export BORG_PASSCOMMAND="cat -- '${passphrase_file//\'/\'\\\'\'}'"
  fi
  unset BORG_PASSPHRASE
  # Keep borg's cache and security records per app and host: two lab hosts on one machine (or a
  # migrated repo) must not trip over each other's "repository moved" and manifest-age records.
  export BORG_BASE_DIR="${BORG_BASE_DIR:-$STATE_DIR/borg}"
  # A repository that migrate carried to this host has a new path but is the same repository.
  export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
  mkdir -p "$BORG_BASE_DIR"
}

borg_log_flags() {
  case "${DEPLOY_LOG_LEVEL:-info}" in
    debug) echo --debug ;;
    warn | error) echo --warning ;;
    *) echo --info ;;
  esac
}
