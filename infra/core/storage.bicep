// The app's only storage account: host state (blobs, timers), the deployment package,
// and the tables and queues the service uses. Shared-key access is off, so every client,
// including the Functions host and the deployment, authenticates with Entra ID.
@description('Name of the storage account (3-24 lower-case letters and digits).')
param name string

@description('Region of the storage account.')
param location string

@description('Tags applied to the storage account.')
param tags object

@description('Blob container that holds the Flex Consumption deployment package; empty creates none (the package lives in another account).')
param deploymentContainerName string

@description('Tables to create (core.names.Tables.ALL).')
param tableNames array = []

@description('Queues to create, poison queues included (core.names.Queues.ALL).')
param queueNames array = []

@description('Log Analytics workspace that receives the storage audit logs.')
param logAnalyticsWorkspaceId string

@minValue(1)
@maxValue(365)
@description('Days deleted blobs and containers can be restored.')
param deleteRetentionDays int = 7

@description('Subnet of the function app\'s virtual network integration allowed through the firewall; empty leaves the account on its public endpoint (Entra-only, shared keys off).')
param allowedSubnetId string = ''

@description('Public IP addresses or CIDR ranges allowed through the firewall when allowedSubnetId is set (admin workstations, CI).')
param allowedIpRanges array = []

// Network-restricted when a subnet is given: the app reaches the account through its VNet
// integration (service endpoint Microsoft.Storage on that subnet), AzureServices keeps the
// diagnostic settings and the platform's trusted services working.
var restricted = !empty(allowedSubnetId)

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    networkAcls: restricted ? {
      bypass: 'AzureServices'
      defaultAction: 'Deny'
      ipRules: [for ipRange in allowedIpRanges: { value: ipRange, action: 'Allow' }]
      virtualNetworkRules: [
        { id: allowedSubnetId, action: 'Allow' }
      ]
    } : {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = if (!empty(deploymentContainerName)) {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2024-01-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2024-01-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2024-01-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2024-01-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

// Audit who read, wrote and deleted what (queue poison handling, table writes) in Log Analytics.
resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit'
  scope: tableService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
