#!/bin/sh
# azd postdeploy hook: makes sure the function key that Graph webhook URLs carry (?code=)
# exists, both as the host key `graph-webhook` (what the Functions host checks) and as the
# Key Vault secret `webhook-url-code` (what the app reads, via the Key Vault reference in
# WEBHOOK_URL_CODE). Idempotent: an existing key is kept, because every live Graph
# subscription's notificationUrl already carries it.
#
# A new key is created only on a clear "absent" answer: listkeys returned the host's
# functionKeys and `graph-webhook` is not among them. Any other answer (403 while role
# assignments propagate, 5xx or "host not started" right after a deployment, a reply without
# functionKeys) is retried with exponential back-off and, if it persists, fails the hook
# loudly without touching the key: a new key would break every live subscription URL.
#
# Runs with the deployer's Azure CLI login and needs only management-plane rights on the
# resource group (Contributor): the secret is written through Azure Resource Manager, so
# the deployer needs no Key Vault data-plane role. The key value is never printed and never
# passed on a command line (it goes through a private temporary file).
set -eu

: "${AZURE_RESOURCE_GROUP:?run through azd (azd up / azd deploy) or export AZURE_RESOURCE_GROUP}"
: "${SERVICE_API_NAME:?run through azd or export SERVICE_API_NAME}"
: "${AZURE_KEY_VAULT_NAME:?run through azd or export AZURE_KEY_VAULT_NAME}"
# The vault the app's WEBHOOK_URL_CODE Key Vault reference points at (infra/main.bicep output).
VAULT_NAME="${WEBHOOK_KEY_VAULT_NAME:-$AZURE_KEY_VAULT_NAME}"

KEY_NAME="graph-webhook"
SECRET_NAME="webhook-url-code"
ARM="https://management.azure.com"
ATTEMPTS=6          # back-off 5, 10, 20, 40, 80 s: a cold Flex host answers within ~2.5 min
FIRST_DELAY=5

sub_id="$(az account show --query id -o tsv)"
app_id="/subscriptions/${sub_id}/resourceGroups/${AZURE_RESOURCE_GROUP}/providers/Microsoft.Web/sites/${SERVICE_API_NAME}"
vault_id="/subscriptions/${sub_id}/resourceGroups/${AZURE_RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/${VAULT_NAME}"
keys_url="${ARM}${app_id}/host/default/listkeys?api-version=2024-04-01"
secret_url="${ARM}${vault_id}/secrets/${SECRET_NAME}?api-version=2024-11-01"

workdir="$(mktemp -d)"
chmod 700 "$workdir"
trap 'rm -rf "$workdir"' EXIT INT TERM
umask 077

# The last line of an az error (the HTTP status and error code; never a key: requests that
# fail carry no key in their answer).
last_error() { tail -n 1 "$workdir/err" 2>/dev/null | cut -c1-300; }

# retry <what> <command...>: runs the command until it succeeds, sleeping 5, 10, 20... s
# between attempts; after ATTEMPTS failures prints why and exits 1. The command reports
# "not a clear answer" by failing and leaves its reason in $workdir/reason.
retry() {
  what="$1"; shift
  attempt=1
  delay=$FIRST_DELAY
  while :; do
    : >"$workdir/reason"
    if "$@"; then
      return 0
    fi
    reason="$(cat "$workdir/reason")"
    if [ "$attempt" -ge "$ATTEMPTS" ]; then
      echo "ERROR: ${what}: no clear answer after ${attempt} attempts (last: ${reason})." >&2
      echo "       Nothing was changed. Re-run 'azd deploy' (or this script) once the function app answers." >&2
      exit 1
    fi
    echo "${what}: no clear answer yet (${reason}); retrying in ${delay}s (attempt ${attempt}/${ATTEMPTS})." >&2
    sleep "$delay"
    attempt=$((attempt + 1))
    delay=$((delay * 2))
  done
}

# Writes present|absent to $workdir/state, or fails when the answer is not clear.
read_key_state() {
  if ! az rest --method post --url "$keys_url" \
      --query "functionKeys == \`null\` && 'no-function-keys' || (functionKeys.\"${KEY_NAME}\" == \`null\` && 'absent' || 'present')" \
      -o tsv >"$workdir/state" 2>"$workdir/err"; then
    last_error >"$workdir/reason"
    return 1
  fi
  case "$(cat "$workdir/state")" in
    present | absent) return 0 ;;
    *) echo "listkeys answered without the host's functionKeys (host not started yet?)" >"$workdir/reason"; return 1 ;;
  esac
}

# Writes the existing key's value to $workdir/value.
read_key_value() {
  if az rest --method post --url "$keys_url" --query "functionKeys.\"${KEY_NAME}\"" -o tsv \
      >"$workdir/value" 2>"$workdir/err" && [ -s "$workdir/value" ]; then
    return 0
  fi
  last_error >"$workdir/reason"
  [ -s "$workdir/reason" ] || echo "the key vanished between two reads" >"$workdir/reason"
  return 1
}

put_key() {
  az rest --method put --url "${ARM}${app_id}/host/default/functionKeys/${KEY_NAME}?api-version=2024-04-01" \
    --body "@$workdir/key.json" --output none 2>"$workdir/err" || { last_error >"$workdir/reason"; return 1; }
}

# Writes true|false to $workdir/secret_exists; 404 is the only clear "absent".
read_secret_state() {
  if az rest --method get --url "$secret_url" --output none 2>"$workdir/err"; then
    echo true >"$workdir/secret_exists"
    return 0
  fi
  if grep -q -E 'Not Found|NotFound' "$workdir/err"; then
    echo false >"$workdir/secret_exists"
    return 0
  fi
  last_error >"$workdir/reason"
  return 1
}

put_secret() {
  az rest --method put --url "$secret_url" --body "@$workdir/secret.json" --output none 2>"$workdir/err" \
    || { last_error >"$workdir/reason"; return 1; }
}

# 1. The host key: kept when present, created with a fresh random value only when absent.
retry "Reading the host keys of ${SERVICE_API_NAME}" read_key_state
created_key=false
if [ "$(cat "$workdir/state")" = present ]; then
  retry "Reading the host key '${KEY_NAME}'" read_key_value
  echo "Host key '${KEY_NAME}' already exists on ${SERVICE_API_NAME}; keeping it."
else
  head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$workdir/value"
  printf '{"properties":{"name":"%s","value":"%s"}}' "$KEY_NAME" "$(cat "$workdir/value")" >"$workdir/key.json"
  retry "Creating the host key '${KEY_NAME}'" put_key
  created_key=true
  echo "Created host key '${KEY_NAME}' on ${SERVICE_API_NAME}."
fi

# 2. The Key Vault secret (metadata read through ARM; values are never returned there).
retry "Checking Key Vault secret '${SECRET_NAME}' in ${VAULT_NAME}" read_secret_state
secret_exists="$(cat "$workdir/secret_exists")"
if [ "$created_key" = true ] || [ "$secret_exists" = false ]; then
  if [ "$created_key" = true ] && [ "$secret_exists" = true ]; then
    echo "WARNING: the host key was absent but the vault had one: replaced it. Existing Graph" >&2
    echo "         subscriptions carry the old key; the reconciliation timer re-creates them." >&2
  fi
  printf '{"properties":{"value":"%s","contentType":"Azure Functions host key for Graph webhook URLs"}}' \
    "$(cat "$workdir/value")" >"$workdir/secret.json"
  retry "Writing Key Vault secret '${SECRET_NAME}'" put_secret
  echo "Stored the key in Key Vault secret '${SECRET_NAME}' (${VAULT_NAME})."
  # Key Vault references are resolved at start-up (and refreshed daily): restart so
  # WEBHOOK_URL_CODE holds the key now rather than the unresolved reference.
  az functionapp restart --resource-group "$AZURE_RESOURCE_GROUP" --name "$SERVICE_API_NAME" --output none
  echo "Restarted ${SERVICE_API_NAME} so WEBHOOK_URL_CODE resolves."
else
  echo "Key Vault secret '${SECRET_NAME}' already exists; nothing to do."
fi
