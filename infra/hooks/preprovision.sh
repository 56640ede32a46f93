#!/bin/sh
# azd preprovision hook: checks what Bicep cannot say in plain words, and prepares the Key
# Vault create mode so that `azd down` followed by `azd up` with the same environment works.
#
# 1. APP_URL must be an https URL with a host and no query, fragment or spaces (the consent
#    and sign-in callbacks redirect there; infra/main.bicep rejects bad values too, less kindly).
# 2. NETWORK_MODE=ipRules needs INTEGRATION_SUBNET_ID (docs/deploy.md, "Network isolation").
# 3. Key Vault has purge protection: after `azd down` the vault is soft-deleted and its name
#    stays reserved for up to 90 days, so creating it again fails. This hook looks for
#    soft-deleted vaults of this environment (tag azd-env-name, same region) and sets
#    KEY_VAULT_CREATE_MODE / WEBHOOK_KEY_VAULT_CREATE_MODE to `recover` (else `default`), which
#    main.parameters.json passes to the vaults' createMode. Secrets come back with the vault.
#
# Needs: az (logged in; reading deleted vaults needs Microsoft.KeyVault/locations/deletedVaults/read,
# part of Contributor) and azd (to store the two values in the environment).
set -eu

: "${AZURE_ENV_NAME:?run through azd (azd up / azd provision)}"
: "${AZURE_LOCATION:?run through azd, after azd env set AZURE_LOCATION <region>}"

fail() {
  echo "ERROR: $*" >&2
  exit 1
}

# --- 1. APP_URL ---------------------------------------------------------------------
app_url="${APP_URL:-}"
[ -n "$app_url" ] || fail "APP_URL is not set: azd env set APP_URL https://<your scheduling web app>"
if ! printf '%s\n' "$app_url" | grep -Eq '^https://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[^[:space:]?#<>*]*)?$'; then
  fail "APP_URL '${app_url}' is not an https URL of the form https://<host>[/path] (no query, fragment or spaces)."
fi

# --- 2. Network mode ----------------------------------------------------------------
case "${NETWORK_MODE:-public}" in
  public) ;;
  ipRules)
    printf '%s\n' "${INTEGRATION_SUBNET_ID:-}" | grep -Eq '^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft.Network/virtualNetworks/[^/]+/subnets/[^/]+$' \
      || fail "NETWORK_MODE=ipRules needs INTEGRATION_SUBNET_ID, the resource id of a subnet delegated to Microsoft.App/environments (docs/deploy.md, \"Network isolation\")."
    ;;
  *) fail "NETWORK_MODE must be public or ipRules, not '${NETWORK_MODE}'." ;;
esac

# --- 3. Soft-deleted vaults of this environment ------------------------------------
errfile="$(mktemp)"
trap 'rm -f "$errfile"' EXIT INT TERM
if ! deleted="$(az keyvault list-deleted --resource-type vault \
    --query "[?properties.tags.\"azd-env-name\"=='${AZURE_ENV_NAME}' && properties.location=='${AZURE_LOCATION}'].name" \
    -o tsv 2>"$errfile")"; then
  fail "could not list soft-deleted Key Vaults ($(tail -n 1 "$errfile")). Without that, provisioning fails on a vault name left by azd down. Check 'az login' and your rights on the subscription."
fi

main_mode=default
webhook_mode=default
for name in $deleted; do
  case "$name" in
    kvw-*) webhook_mode=recover ;;
    kv-*) main_mode=recover ;;
    *) continue ;;
  esac
  echo "Soft-deleted Key Vault '${name}' belongs to environment ${AZURE_ENV_NAME}: provisioning recovers it (with its secrets)."
done

azd env set KEY_VAULT_CREATE_MODE "$main_mode" >/dev/null
azd env set WEBHOOK_KEY_VAULT_CREATE_MODE "$webhook_mode" >/dev/null
echo "Key Vault create mode: ${main_mode} (webhook-key vault: ${webhook_mode})."
