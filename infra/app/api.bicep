// The function app on a Flex Consumption plan (Linux, Python 3.11), running as the
// user-assigned identity. Every app setting the code reads (core/settings.py SETTING_NAMES)
// is set in `appSettings` below; tests/infra/test_settings_drift.py keeps the two in step.
@description('Name of the function app (also its default host name).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags; the app also gets azd-service-name: api so `azd deploy` finds it.')
param tags object

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('Storage account for host state, the deployment package, tables and queues.')
param storageAccountName string

@description('Storage account holding the deployment package container (the host account, or its own account in networkMode ipRules).')
param deploymentStorageAccountName string

@description('Blob container holding the deployment package.')
param deploymentContainerName string

@description('Subnet (delegated to Microsoft.App/environments) for virtual network integration; empty: none.')
param virtualNetworkSubnetId string = ''

@description('Application Insights component for telemetry.')
param applicationInsightsName string

@description('Key Vault URI (credentials).')
param keyVaultUri string

@description('Vault holding the webhook function key secret, for its Key Vault reference (must not be network-restricted: Flex Consumption resolves references outside the VNet).')
param webhookKeyVaultName string

@description('Azure Communication Services endpoint for owner alerts.')
param acsEndpoint string

@description('Sender address of owner alerts.')
param alertSenderAddress string

@description('Application (client) id of the multi-tenant app registration.')
param entraClientId string

@description('Accepted audience of API tokens.')
param apiAudience string

@description('Comma-separated tenant ids allowed to onboard, or *.')
param allowedTenants string

@description('URL of the single-page app.')
param appUrl string

@description('Comma-separated CORS origins; empty uses the origin of appUrl.')
param corsAllowedOrigins string

@minValue(40)
@maxValue(1000)
@description('Maximum Flex Consumption instances.')
param maximumInstanceCount int

@allowed([512, 2048, 4096])
@description('Memory per instance, in MB.')
param instanceMemoryMB int

@description('Keep one HTTP instance always ready (cold-start-proof Graph validation handshake).')
param enableAlwaysReady bool

@allowed(['DEBUG', 'INFO', 'WARNING', 'ERROR'])
@description('Log level of the app code.')
param logLevel string

@description('NCRONTAB of the access-test rerun timer.')
param accessTestSchedule string

@description('NCRONTAB of the subscription renewal timer.')
param renewalSchedule string

@description('NCRONTAB of the reconciliation timer.')
param reconcileSchedule string

@description('NCRONTAB of the re-read of sessions starting within 24 h.')
param reconcileNearSchedule string

@description('Comma-separated client ids whose app-only tokens the API accepts (the product server); empty: none.')
param productServerClientIds string

// Name of the Key Vault secret holding the function key that Graph webhook URLs carry as
// ?code=. infra/hooks/postdeploy.sh creates it once and registers it as the host key
// `graph-webhook`; the app reads it through a Key Vault reference, never as plain text.
var webhookKeySecretName = 'webhook-url-code'

var appUrlParts = split(appUrl, '/')
var appOrigin = '${appUrlParts[0]}//${appUrlParts[2]}'
var corsOrigins = !empty(corsAllowedOrigins) ? corsAllowedOrigins : appOrigin

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: storageAccountName
}

resource deploymentStorage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: deploymentStorageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    // Outbound traffic to the network-restricted storage account and vault goes through this
    // subnet (service endpoints); null when the app runs without a virtual network.
    virtualNetworkSubnetId: !empty(virtualNetworkSubnetId) ? virtualNetworkSubnetId : null
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      cors: {
        allowedOrigins: split(replace(corsOrigins, ' ', ''), ',')
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${deploymentStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: enableAlwaysReady ? [ { name: 'http', instanceCount: 1 } ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// A separate config resource so PUBLIC_BASE_URL can use the host name Azure assigned.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: {
    // Identity-based host storage (no connection string, shared keys are off).
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    // Telemetry with Entra auth (host settings; local auth is off on the component).
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // Identity and Entra.
    AZURE_CLIENT_ID: identityClientId
    ENTRA_CLIENT_ID: entraClientId
    ENTRA_CREDENTIAL: 'federated_identity'
    API_AUDIENCE: apiAudience
    API_SCOPE: 'access_as_user'
    AUTHORITY_HOST: 'https://login.microsoftonline.com'
    GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0'
    ALLOWED_TENANTS: allowedTenants
    // Where things are.
    KEY_VAULT_URI: keyVaultUri
    PUBLIC_BASE_URL: 'https://${functionApp.properties.defaultHostName}'
    APP_URL: appUrl
    CORS_ALLOWED_ORIGINS: corsOrigins
    WEBHOOK_URL_CODE: '@Microsoft.KeyVault(VaultName=${webhookKeyVaultName};SecretName=${webhookKeySecretName})'
    // Owner alerts.
    ACS_ENDPOINT: acsEndpoint
    ALERT_SENDER_ADDRESS: alertSenderAddress
    // Timers and logging.
    ACCESS_TEST_SCHEDULE: accessTestSchedule
    RENEWAL_SCHEDULE: renewalSchedule
    RECONCILE_SCHEDULE: reconcileSchedule
    RECONCILE_NEAR_SCHEDULE: reconcileNearSchedule
    LOG_LEVEL: logLevel
    // The product server's app-only tokens (azp allow-list).
    PRODUCT_SERVER_CLIENT_IDS: productServerClientIds
  }
}

// No FTP or SCM basic-auth publishing: deployments go through Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output publicBaseUrl string = 'https://${functionApp.properties.defaultHostName}'
