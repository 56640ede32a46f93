// Deploys the whole service into the customer's own subscription: one `azd up`, or
//   az deployment sub create -l <region> -f infra/main.bicep -p infra/main.parameters.json
// Everything is identity-based: no connection strings, account keys or client secrets are
// stored in app settings. See docs/deploy.md for the steps before and after.
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------
@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds the resource token and the azd-env-name tag.')
param environmentName string

// Regions that offer the Flex Consumption plan. Source: the region list of Microsoft's
// Flex Consumption azd quickstart, Azure-Samples/functions-quickstart-python-azd-timer,
// infra/main.bicep (commit 05d91bcc809ff5f002f70389201856818fbd88db), read 2026-12-04,
// without its canary region eastus2euap. Microsoft Learn (azure-functions/
// flex-consumption-how-to, "View currently supported regions") gives the live list:
// `az functionapp list-flexconsumption-locations -o table`. Add a region here when it appears
// there; azd offers only these in its location prompt.
@minLength(1)
@description('Region for every resource; one that offers the Flex Consumption plan.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({ azd: { type: 'location' } })
param location string

@description('Name of the resource group to create; empty derives rg-<environmentName>.')
param resourceGroupName string = ''

@minLength(36)
@maxLength(36)
@description('Application (client) id of the multi-tenant app registration created by scripts/register-app.sh.')
param entraClientId string

@description('Accepted audience of API tokens; empty means the app registration client id (v2 tokens).')
param apiAudience string = ''

@description('Comma-separated tenant ids allowed to onboard, or * for any tenant. Empty allows only the tenant you deploy from.')
param allowedTenants string = ''

@minLength(10)
@maxLength(2048)
@description('https URL of the single-page app that the consent and sign-in callbacks redirect to (https://<host>[/path], no query or fragment).')
param appUrl string

@description('Comma-separated browser origins allowed by CORS (no paths). Empty uses the origin of appUrl.')
param corsAllowedOrigins string = ''

@minValue(40)
@maxValue(1000)
@description('Upper bound on Flex Consumption instances: caps cost and the fan-out against Microsoft Graph.')
param maximumInstanceCount int = 40

@allowed([512, 2048, 4096])
@description('Memory per Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

@description('Keep one HTTP instance always ready so the Graph validation handshake answers within 10 s on a cold start (billed while idle).')
param enableAlwaysReady bool = true

@allowed(['Africa', 'Asia Pacific', 'Australia', 'Brazil', 'Canada', 'Europe', 'France', 'Germany', 'India', 'Japan', 'Korea', 'Norway', 'Switzerland', 'UAE', 'UK', 'United States'])
@description('Where Azure Communication Services stores email data at rest (owner alerts).')
param emailDataLocation string = 'United States'

@allowed(['DEBUG', 'INFO', 'WARNING', 'ERROR'])
@description('Log level of the app code.')
param logLevel string = 'INFO'

@description('Six-field NCRONTAB (UTC) of the access-test rerun timer.')
param accessTestSchedule string = '0 0 3 * * *'

@description('Six-field NCRONTAB (UTC) of the subscription renewal timer.')
param renewalSchedule string = '0 */30 * * * *'

@description('Six-field NCRONTAB (UTC) of the reconciliation timer (sessions starting after the next 24 h, subscription housekeeping).')
param reconcileSchedule string = '0 15 */2 * * *'

@description('Six-field NCRONTAB (UTC) of the re-read of sessions starting within 24 h: the freshness bound when Graph drops notifications (docs/scaling.md).')
param reconcileNearSchedule string = '0 */15 * * * *'

@description('Comma-separated client ids (azp) of your product server(s) whose app-only tokens the API accepts; empty: none (docs/product-integration.md).')
param productServerClientIds string = ''

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Publish the web console (web/dist) as an Azure Static Web App (Free) and allow its origin in CORS.')
param deployWebConsole bool = true

@allowed(['westus2', 'centralus', 'eastus2', 'westeurope', 'eastasia'])
@description('Region of the web console\'s Static Web App metadata (Static Web Apps runs in these regions; files are served globally).')
param webConsoleLocation string = 'westeurope'

@allowed(['public', 'ipRules'])
@description('public: storage and Key Vault answer on their public endpoints (Entra-only). ipRules: both deny by default and admit only the function app\'s integration subnet (service endpoints) and allowedIpRanges; see docs/deploy.md, "Network isolation".')
param networkMode string = 'public'

@description('networkMode ipRules: resource id of an existing subnet delegated to Microsoft.App/environments, with service endpoints Microsoft.Storage and Microsoft.KeyVault, for the function app\'s virtual network integration.')
param integrationSubnetId string = ''

@description('networkMode ipRules: comma-separated public IPs or CIDR ranges also let through the storage and Key Vault firewalls (admin workstations, CI).')
param allowedIpRanges string = ''

@allowed(['default', 'recover'])
@description('recover: bring back the soft-deleted Key Vault of this environment (set by infra/hooks/preprovision.sh after azd down).')
param keyVaultCreateMode string = 'default'

@allowed(['default', 'recover'])
@description('As keyVaultCreateMode, for the webhook-key vault of networkMode ipRules.')
param webhookKeyVaultCreateMode string = 'default'

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

// Every table in core.names.Tables.ALL (tests/infra/test_settings_drift.py compares them).
var tableNames = [
  'integrations'
  'audit'
  'accesstests'
  'pairings'
  'sessions'
  'eventindex'
  'subscriptions'
  'subscriptionexpiry'
  'oauthstates'
  'alerts'
  'connections'
  'ratelimits'
  'idempotency'
  'slotclaims'
  'availabilityrules'
  'webhookendpoints'
  'webhookdeliveries'
  'productevents'
]

// Every queue in core.names.Queues.ALL and its poison queue. The host would create the
// poison queues lazily; creating them here lets alerts and dashboards watch them from day one.
var queueNames = [
  'event-writes'
  'event-writes-poison'
  'notifications'
  'notifications-poison'
  'lifecycle'
  'lifecycle-poison'
  'renewals'
  'renewals-poison'
  'access-tests'
  'access-tests-poison'
  'owner-alerts'
  'owner-alerts-poison'
  'product-events'
  'product-events-poison'
]

// Provision-time checks Bicep has no decorator for. A bad value fails the deployment with the
// sentence inside int() in its error; infra/hooks/preprovision.sh reports both earlier, in
// plain words, when deploying with azd.
var rawAppUrlParts = split(appUrl, '/')
var appUrlHost = length(rawAppUrlParts) >= 3 ? rawAppUrlParts[2] : ''
var appUrlIsValid = startsWith(appUrl, 'https://') && !empty(appUrlHost) && !contains(appUrl, ' ') && !contains(appUrl, '?') && !contains(appUrl, '#') && !contains(appUrl, '<') && !contains(appUrl, '>') && !contains(appUrl, '*')
var checkedAppUrl = appUrlIsValid ? appUrl : string(int('appUrl must be an https:// URL with a host and no spaces, query or fragment'))
var restricted = networkMode == 'ipRules'
var checkedSubnetId = restricted && empty(integrationSubnetId) ? string(int('networkMode ipRules needs integrationSubnetId: a subnet delegated to Microsoft.App/environments')) : integrationSubnetId
var ipRanges = empty(allowedIpRanges) ? [] : split(replace(allowedIpRanges, ' ', ''), ',')

// The API's CORS origins: the ones given (else appUrl's origin) plus the web console's.
var appUrlParts = split(checkedAppUrl, '/')
var appOrigin = '${appUrlParts[0]}//${appUrlParts[2]}'
var baseCorsOrigins = !empty(corsAllowedOrigins) ? corsAllowedOrigins : appOrigin

// ---------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------
resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity './core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring './core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module storage './core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    // With a network-restricted account the package goes to its own account (below): the
    // platform's deployment service uploads it from outside the virtual network.
    deploymentContainerName: restricted ? '' : deploymentContainerName
    tableNames: tableNames
    queueNames: queueNames
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    allowedSubnetId: restricted ? checkedSubnetId : ''
    allowedIpRanges: ipRanges
  }
}

// networkMode ipRules: the deployment package only (code, no data), Entra-only and on its
// public endpoint so `azd deploy` and the platform can write and read it.
module deploymentStorage './core/storage.bicep' = if (restricted) {
  name: 'deployment-storage'
  scope: rg
  params: {
    name: 'stdep${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module keyVault './core/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    createMode: keyVaultCreateMode
    allowedSubnetId: restricted ? checkedSubnetId : ''
    allowedIpRanges: ipRanges
  }
}

// networkMode ipRules: Flex Consumption cannot resolve a Key Vault reference against a
// network-restricted vault, so the webhook key (the only reference) lives in this vault,
// which holds nothing else, stays on its public endpoint (Entra RBAC, read-only for the app)
// and keeps the credentials vault above behind its firewall.
module webhookKeyVault './core/keyvault.bicep' = if (restricted) {
  name: 'webhook-keyvault'
  scope: rg
  params: {
    name: 'kvw-${resourceToken}'
    location: location
    tags: tags
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    createMode: webhookKeyVaultCreateMode
  }
}

module email './core/email.bicep' = {
  name: 'email'
  scope: rg
  params: {
    emailServiceName: 'ecs-${resourceToken}'
    communicationServiceName: 'acs-${resourceToken}'
    dataLocation: emailDataLocation
    tags: tags
  }
}

module web './core/web.bicep' = if (deployWebConsole) {
  name: 'web'
  scope: rg
  params: {
    name: 'swa-${resourceToken}'
    location: webConsoleLocation
    tags: tags
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    tableNames: tableNames
    queueNames: queueNames
    deploymentStorageAccountName: restricted ? deploymentStorage.outputs.name : ''
    deploymentContainerName: deploymentContainerName
    keyVaultName: keyVault.outputs.name
    webhookKeyVaultName: restricted ? webhookKeyVault.outputs.name : ''
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    communicationServiceName: email.outputs.communicationServiceName
  }
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentStorageAccountName: restricted ? deploymentStorage.outputs.name : storage.outputs.name
    deploymentContainerName: deploymentContainerName
    virtualNetworkSubnetId: restricted ? checkedSubnetId : ''
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultUri: keyVault.outputs.uri
    webhookKeyVaultName: restricted ? webhookKeyVault.outputs.name : keyVault.outputs.name
    acsEndpoint: email.outputs.endpoint
    alertSenderAddress: email.outputs.senderAddress
    entraClientId: entraClientId
    apiAudience: !empty(apiAudience) ? apiAudience : entraClientId
    allowedTenants: !empty(allowedTenants) ? allowedTenants : tenant().tenantId
    appUrl: checkedAppUrl
    corsAllowedOrigins: deployWebConsole ? join(union(split(baseCorsOrigins, ','), [web.outputs.url]), ',') : corsAllowedOrigins
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    enableAlwaysReady: enableAlwaysReady
    logLevel: logLevel
    accessTestSchedule: accessTestSchedule
    renewalSchedule: renewalSchedule
    reconcileSchedule: reconcileSchedule
    reconcileNearSchedule: reconcileNearSchedule
    productServerClientIds: productServerClientIds
  }
  // The app starts reading storage, Key Vault and email as soon as it exists.
  dependsOn: [rbac]
}

// ---------------------------------------------------------------------------------------
// Outputs (azd stores them in .azure/<env>/.env; none of them is a secret)
// ---------------------------------------------------------------------------------------
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = api.outputs.name
output API_BASE_URL string = '${api.outputs.publicBaseUrl}/api'
output GRAPH_NOTIFICATION_URL string = '${api.outputs.publicBaseUrl}/api/graph/notifications'
output GRAPH_LIFECYCLE_URL string = '${api.outputs.publicBaseUrl}/api/graph/lifecycle'
output CONSENT_REDIRECT_URI string = '${api.outputs.publicBaseUrl}/api/integration/consent/callback'
output SIGNIN_REDIRECT_URI string = '${api.outputs.publicBaseUrl}/api/me/connection/callback'
output KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
// The vault WEBHOOK_URL_CODE's Key Vault reference reads (infra/hooks/postdeploy.sh writes it).
output WEBHOOK_KEY_VAULT_NAME string = restricted ? webhookKeyVault.outputs.name : keyVault.outputs.name
output NETWORK_MODE string = networkMode
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output ALERT_SENDER_ADDRESS string = email.outputs.senderAddress
output ENTRA_CLIENT_ID string = entraClientId
output WEB_URL string = deployWebConsole ? web.outputs.url : ''
