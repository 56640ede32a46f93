#!/usr/bin/env bash
# Creates (or brings up to date) the multi-tenant Entra app registration of the service:
#   - sign-in audience AzureADMultipleOrgs, v2 access tokens, identifier URI api://<appId>
#   - delegated scope access_as_user (what the SPA asks for)
#   - app roles Integration.Admin (users) and, for the product's server (applications),
#     Pairings.ReadWrite.All, Sessions.ReadWrite.All and Webhooks.ReadWrite.All
#   - the optional access-token claim idtyp ("app" on app-only tokens), so the API tells
#     app-only callers from users without guessing
#   - Microsoft Graph permissions: application (domain-wide method) and delegated
#     (per-user and service-account methods), by permission id
#   - web redirect URIs for the admin-consent and per-user sign-in callbacks
#   - the federated credential that makes the function app's user-assigned managed
#     identity the app's credential: no client secret is ever created
#
# Idempotent-ish: run it before `azd up` (to get the client id) and again after (with the
# API base URL and the identity's principal id). Existing scope/role ids are kept.
#
# Entra roles needed (see docs/app-registration.md):
#   create the registration         any user when "Users can register applications" is on,
#                                   else Application Developer
#   update it, add the federated    an owner of the registration, or Application
#   credential                      Administrator / Cloud Application Administrator
#   grant admin consent (later, via Privileged Role Administrator or Global Administrator
#   the consent link)               in each customer tenant (Graph application permissions)
#
# Usage:
#   scripts/register-app.sh [--name NAME] [--client-id APPID]
#                           [--api-base-url https://<app>.azurewebsites.net/api]
#                           [--mi-principal-id GUID] [--tenant-id GUID]
#                           [--web-url https://<web console origin>]
# Values not given are read from the current azd environment when azd is available
# (ENTRA_CLIENT_ID, API_BASE_URL, MANAGED_IDENTITY_PRINCIPAL_ID, AZURE_TENANT_ID).
set -euo pipefail

NAME="M365 Scheduling Integration"
CLIENT_ID=""
API_BASE_URL=""
WEB_URL=""
MI_PRINCIPAL_ID=""
TENANT_ID=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) NAME="$2"; shift 2 ;;
    --client-id) CLIENT_ID="$2"; shift 2 ;;
    --api-base-url) API_BASE_URL="${2%/}"; shift 2 ;;
    --mi-principal-id) MI_PRINCIPAL_ID="$2"; shift 2 ;;
    --tenant-id) TENANT_ID="$2"; shift 2 ;;
    --web-url) WEB_URL="${2%/}"; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

azd_value() {
  command -v azd >/dev/null 2>&1 || return 0
  azd env get-value "$1" 2>/dev/null | grep -v '^ERROR' || true
}
[[ -n "$CLIENT_ID" ]] || CLIENT_ID="$(azd_value ENTRA_CLIENT_ID)"
[[ -n "$API_BASE_URL" ]] || API_BASE_URL="$(azd_value API_BASE_URL)"
[[ -n "$WEB_URL" ]] || WEB_URL="$(azd_value WEB_URL)"
[[ -n "$MI_PRINCIPAL_ID" ]] || MI_PRINCIPAL_ID="$(azd_value MANAGED_IDENTITY_PRINCIPAL_ID)"
[[ -n "$TENANT_ID" ]] || TENANT_ID="$(az account show --query tenantId -o tsv)"

GRAPH_APP_ID="00000003-0000-0000-c000-000000000000"  # Microsoft Graph
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# --- 1. The registration ---------------------------------------------------------------
if [[ -z "$CLIENT_ID" ]]; then
  CLIENT_ID="$(az ad app list --display-name "$NAME" --query "[0].appId" -o tsv)"
fi
if [[ -z "$CLIENT_ID" ]]; then
  CLIENT_ID="$(az ad app create --display-name "$NAME" --sign-in-audience AzureADMultipleOrgs --query appId -o tsv)"
  echo "Created app registration '$NAME' (client id $CLIENT_ID)."
else
  echo "Updating app registration $CLIENT_ID."
fi
OBJECT_ID="$(az ad app show --id "$CLIENT_ID" --query id -o tsv)"

# Keep the ids of an existing scope and roles (Graph refuses to change enabled ones).
existing_id() { az ad app show --id "$CLIENT_ID" --query "$1" -o tsv; }
new_uuid() { cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen | tr 'A-Z' 'a-z'; }
SCOPE_ID="$(existing_id "api.oauth2PermissionScopes[?value=='access_as_user'].id | [0]")"
ADMIN_ROLE_ID="$(existing_id "appRoles[?value=='Integration.Admin'].id | [0]")"
PAIRINGS_ROLE_ID="$(existing_id "appRoles[?value=='Pairings.ReadWrite.All'].id | [0]")"
SESSIONS_ROLE_ID="$(existing_id "appRoles[?value=='Sessions.ReadWrite.All'].id | [0]")"
WEBHOOKS_ROLE_ID="$(existing_id "appRoles[?value=='Webhooks.ReadWrite.All'].id | [0]")"
SCOPE_ID="${SCOPE_ID:-$(new_uuid)}"
ADMIN_ROLE_ID="${ADMIN_ROLE_ID:-$(new_uuid)}"
PAIRINGS_ROLE_ID="${PAIRINGS_ROLE_ID:-$(new_uuid)}"
SESSIONS_ROLE_ID="${SESSIONS_ROLE_ID:-$(new_uuid)}"
WEBHOOKS_ROLE_ID="${WEBHOOKS_ROLE_ID:-$(new_uuid)}"

# --- 2. Microsoft Graph permission ids, looked up by name (well-known ids as fallback) ---
graph_id() {  # graph_id <appRoles|oauth2PermissionScopes> <name> <well-known id>
  local found
  found="$(az ad sp show --id "$GRAPH_APP_ID" --query "$1[?value=='$2'].id | [0]" -o tsv 2>/dev/null || true)"
  if [[ -n "$found" && "$found" != "$3" ]]; then
    echo "note: Graph reports $2 ($1) as $found, not $3; using $found" >&2
  fi
  echo "${found:-$3}"
}
# Application permissions (domain-wide method, client credentials):
APP_CALENDARS_RW="$(graph_id appRoles Calendars.ReadWrite ef54d2bf-783f-4e0f-bca1-3210c0444d99)"     # events, getSchedule, subscriptions
APP_USER_READ_ALL="$(graph_id appRoles User.Read.All df021288-bdef-4463-88db-98f22de89214)"          # list users for the access test
APP_MAILBOX_SETTINGS="$(graph_id appRoles MailboxSettings.Read 40f97065-369a-49f4-947c-6a255697ae91)" # time zone, working hours
APP_PLACE_READ_ALL="$(graph_id appRoles Place.Read.All 913b9306-0ce1-42b8-9137-6a7df690a760)"       # rooms and room lists
# Delegated permissions (per-user and service-account methods):
DEL_USER_READ="$(graph_id oauth2PermissionScopes User.Read e1fe6dd8-ba31-4d61-89e7-88639da4683d)"
DEL_USER_READBASIC_ALL="$(graph_id oauth2PermissionScopes User.ReadBasic.All b340eb25-3456-403f-be2f-af7a0d370277)"
DEL_CALENDARS_RW="$(graph_id oauth2PermissionScopes Calendars.ReadWrite 1ec239c2-d7c9-4623-a91a-a9775856bb36)"
DEL_MAILBOX_SETTINGS="$(graph_id oauth2PermissionScopes MailboxSettings.Read 87f447af-9fa4-4c32-9dfa-4a57a73d18ce)"
DEL_OFFLINE_ACCESS="$(graph_id oauth2PermissionScopes offline_access 7427e0e9-2fba-42fe-b0c0-848c9e6a8182)"
# The service-account method: a scheduling mailbox writing calendars it has delegate rights on.
DEL_CALENDARS_RW_SHARED="$(graph_id oauth2PermissionScopes Calendars.ReadWrite.Shared 12466101-c9b8-439a-8589-dd09ee67e8e9)"

# --- 3. Redirect URIs ------------------------------------------------------------------
REDIRECTS="[]"
if [[ -n "$API_BASE_URL" ]]; then
  REDIRECTS="[\"${API_BASE_URL}/integration/consent/callback\", \"${API_BASE_URL}/me/connection/callback\"]"
else
  echo "note: no --api-base-url yet: redirect URIs are set on the run after 'azd up'." >&2
fi

SPA_REDIRECTS="[]"
if [[ -n "$WEB_URL" ]]; then
  SPA_REDIRECTS="[\"${WEB_URL}/\"]"   # the web console signs in with MSAL.js (auth code + PKCE)
fi

# --- 4. One PATCH with everything ------------------------------------------------------
cat >"$WORK/app.json" <<JSON
{
  "signInAudience": "AzureADMultipleOrgs",
  "identifierUris": ["api://${CLIENT_ID}"],
  "api": {
    "requestedAccessTokenVersion": 2,
    "oauth2PermissionScopes": [{
      "id": "${SCOPE_ID}",
      "value": "access_as_user",
      "type": "User",
      "isEnabled": true,
      "adminConsentDisplayName": "Use the scheduling integration as the signed-in user",
      "adminConsentDescription": "Lets the scheduling app call the calendar integration API on behalf of the signed-in user.",
      "userConsentDisplayName": "Use the scheduling integration as you",
      "userConsentDescription": "Lets the scheduling app call the calendar integration API on your behalf."
    }]
  },
  "appRoles": [
    {
      "id": "${ADMIN_ROLE_ID}",
      "value": "Integration.Admin",
      "displayName": "Integration administrator",
      "description": "Configure the Microsoft 365 integration of this tenant, run access tests, manage pairings.",
      "allowedMemberTypes": ["User"],
      "isEnabled": true
    },
    {
      "id": "${PAIRINGS_ROLE_ID}",
      "value": "Pairings.ReadWrite.All",
      "displayName": "Read and write all pairings",
      "description": "Lets the product's server create, update and delete pairings without a signed-in user.",
      "allowedMemberTypes": ["Application"],
      "isEnabled": true
    },
    {
      "id": "${SESSIONS_ROLE_ID}",
      "value": "Sessions.ReadWrite.All",
      "displayName": "Act for named users on availability, sessions, series and offered hours",
      "description": "Lets the product's server, without a signed-in user, read availability and read and write sessions, series and offered hours on behalf of the user it names in each request.",
      "allowedMemberTypes": ["Application"],
      "isEnabled": true
    },
    {
      "id": "${WEBHOOKS_ROLE_ID}",
      "value": "Webhooks.ReadWrite.All",
      "displayName": "Manage outbound webhook endpoints",
      "description": "Lets the product's server create, read, update and delete the endpoints this service sends webhook events to, without a signed-in user.",
      "allowedMemberTypes": ["Application"],
      "isEnabled": true
    }
  ],
  "optionalClaims": {
    "accessToken": [{"name": "idtyp"}]
  },
  "web": {
    "redirectUris": ${REDIRECTS},
    "implicitGrantSettings": {"enableIdTokenIssuance": false, "enableAccessTokenIssuance": false}
  },
  "spa": {"redirectUris": ${SPA_REDIRECTS}},
  "requiredResourceAccess": [{
    "resourceAppId": "${GRAPH_APP_ID}",
    "resourceAccess": [
      {"id": "${APP_CALENDARS_RW}", "type": "Role"},
      {"id": "${APP_USER_READ_ALL}", "type": "Role"},
      {"id": "${APP_MAILBOX_SETTINGS}", "type": "Role"},
      {"id": "${APP_PLACE_READ_ALL}", "type": "Role"},
      {"id": "${DEL_USER_READ}", "type": "Scope"},
      {"id": "${DEL_USER_READBASIC_ALL}", "type": "Scope"},
      {"id": "${DEL_CALENDARS_RW}", "type": "Scope"},
      {"id": "${DEL_MAILBOX_SETTINGS}", "type": "Scope"},
      {"id": "${DEL_OFFLINE_ACCESS}", "type": "Scope"},
      {"id": "${DEL_CALENDARS_RW_SHARED}", "type": "Scope"}
    ]
  }]
}
JSON
az rest --method PATCH --uri "https://graph.microsoft.com/v1.0/applications/${OBJECT_ID}" \
  --headers "Content-Type=application/json" --body "@$WORK/app.json" --output none
echo "Set v2 tokens, api://${CLIENT_ID}, scope access_as_user, app roles, the idtyp claim, Graph permissions."
[[ "$REDIRECTS" != "[]" ]] && echo "Set redirect URIs: ${REDIRECTS}"

# --- 5. Service principal in the home tenant (lets its admins consent and assign roles) --
if [[ -z "$(az ad sp list --filter "appId eq '${CLIENT_ID}'" --query "[0].id" -o tsv)" ]]; then
  az ad sp create --id "$CLIENT_ID" --output none
  echo "Created the service principal in tenant ${TENANT_ID}."
fi

# --- 6. Federated credential: the user-assigned managed identity is the app's credential --
FIC_NAME="function-app-managed-identity"
if [[ -n "$MI_PRINCIPAL_ID" ]]; then
  cat >"$WORK/fic.json" <<JSON
{
  "name": "${FIC_NAME}",
  "issuer": "https://login.microsoftonline.com/${TENANT_ID}/v2.0",
  "subject": "${MI_PRINCIPAL_ID}",
  "audiences": ["api://AzureADTokenExchange"],
  "description": "The function app's user-assigned managed identity (no client secret)."
}
JSON
  if [[ -n "$(az ad app federated-credential list --id "$CLIENT_ID" --query "[?name=='${FIC_NAME}'].name" -o tsv)" ]]; then
    az ad app federated-credential update --id "$CLIENT_ID" --federated-credential-id "$FIC_NAME" \
      --parameters "@$WORK/fic.json" --output none
    echo "Updated federated credential '${FIC_NAME}' (subject ${MI_PRINCIPAL_ID})."
  else
    az ad app federated-credential create --id "$CLIENT_ID" --parameters "@$WORK/fic.json" --output none
    echo "Created federated credential '${FIC_NAME}' (subject ${MI_PRINCIPAL_ID})."
  fi
else
  echo "note: no --mi-principal-id yet: the federated credential is added on the run after 'azd up'." >&2
fi

if [[ "$(az ad app show --id "$CLIENT_ID" --query "length(passwordCredentials)" -o tsv)" != "0" ]]; then
  echo "WARNING: this registration has client secrets; the service does not need them (remove them)." >&2
fi

echo
echo "ENTRA_CLIENT_ID=${CLIENT_ID}"
echo "Next: azd env set ENTRA_CLIENT_ID ${CLIENT_ID}   (then azd up, then run this script again)"
