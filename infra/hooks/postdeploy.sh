#!/bin/sh
# azd postdeploy hook: makes sure the function key that Graph webhook URLs carry (?code=)
# exists, both as the host key `graph-webhook` (what the Functions host checks) and as the
# Key Vault secret `webhook-url-code` (what the app reads, via the Key Vault reference in
# WEBHOOK_URL_CODE). Idempotent: an existing key is kept, because every live Graph
# subscription's notificationUrl already carries it.
#
# Runs with the deployer's Azure CLI login and needs only management-plane rights on the
# resource group (Contributor): the secret is written through Azure Resource Manager, so
# the deployer needs no Key Vault data-plane role. The key value is never printed and never
# passed on a command line (it goes through a private temporary file).
set -eu

: "${AZURE_RESOURCE_GROUP:?run through azd (azd up / azd deploy) or export AZURE_RESOURCE_GROUP}"
: "${SERVICE_API_NAME:?run through azd or export SERVICE_API_NAME}"
: "${AZURE_KEY_VAULT_NAME:?run through azd or export AZURE_KEY_VAULT_NAME}"

KEY_NAME="graph-webhook"
SECRET_NAME="webhook-url-code"
ARM="https://management.azure.com"

sub_id="$(az account show --query id -o tsv)"
app_id="/subscriptions/${sub_id}/resourceGroups/${AZURE_RESOURCE_GROUP}/providers/Microsoft.Web/sites/${SERVICE_API_NAME}"
vault_id="/subscriptions/${sub_id}/resourceGroups/${AZURE_RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/${AZURE_KEY_VAULT_NAME}"

workdir="$(mktemp -d)"
chmod 700 "$workdir"
trap 'rm -rf "$workdir"' EXIT INT TERM
umask 077

# 1. The host key, created with a fresh random value when missing.
az rest --method post --url "${ARM}${app_id}/host/default/listkeys?api-version=2024-04-01" \
  --query "functionKeys.\"${KEY_NAME}\"" -o tsv >"$workdir/value" 2>/dev/null || : >"$workdir/value"
created_key=false
if [ ! -s "$workdir/value" ]; then
  head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$workdir/value"
  printf '{"properties":{"name":"%s","value":"%s"}}' "$KEY_NAME" "$(cat "$workdir/value")" >"$workdir/key.json"
  az rest --method put --url "${ARM}${app_id}/host/default/functionKeys/${KEY_NAME}?api-version=2024-04-01" \
    --body "@$workdir/key.json" --output none
  created_key=true
  echo "Created host key '${KEY_NAME}' on ${SERVICE_API_NAME}."
else
  echo "Host key '${KEY_NAME}' already exists on ${SERVICE_API_NAME}; keeping it."
fi

# 2. The Key Vault secret (metadata read through ARM; values are never returned there).
if az rest --method get --url "${ARM}${vault_id}/secrets/${SECRET_NAME}?api-version=2024-11-01" --output none 2>/dev/null; then
  secret_exists=true
else
  secret_exists=false
fi
if [ "$created_key" = true ] || [ "$secret_exists" = false ]; then
  if [ "$created_key" = true ] && [ "$secret_exists" = true ]; then
    echo "WARNING: the host key was missing but the vault had one: replaced it. Existing Graph" >&2
    echo "         subscriptions carry the old key; the reconciliation timer re-creates them." >&2
  fi
  printf '{"properties":{"value":"%s","contentType":"Azure Functions host key for Graph webhook URLs"}}' \
    "$(cat "$workdir/value")" >"$workdir/secret.json"
  az rest --method put --url "${ARM}${vault_id}/secrets/${SECRET_NAME}?api-version=2024-11-01" \
    --body "@$workdir/secret.json" --output none
  echo "Stored the key in Key Vault secret '${SECRET_NAME}'."
  # Key Vault references are resolved at start-up (and refreshed daily): restart so
  # WEBHOOK_URL_CODE holds the key now rather than the unresolved reference.
  az functionapp restart --resource-group "$AZURE_RESOURCE_GROUP" --name "$SERVICE_API_NAME" --output none
  echo "Restarted ${SERVICE_API_NAME} so WEBHOOK_URL_CODE resolves."
else
  echo "Key Vault secret '${SECRET_NAME}' already exists; nothing to do."
fi
