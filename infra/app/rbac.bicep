// Exactly the data-plane roles the app's identity needs, each scoped to the narrowest
// resource Azure allows it on, and named guid(scope, principal, role) so re-deploying never
// duplicates them.
//
// Scope of the storage roles:
// - Storage Blob Data Owner stays on the ACCOUNT: the Functions host (AzureWebJobsStorage)
//   lists containers and creates its own (azure-webjobs-hosts for timer and singleton
//   leases, azure-webjobs-secrets for keys), so no container scope covers it. The app code
//   itself uses no blob container.
// - Storage Table Data Contributor is on EACH TABLE the app uses (core.names.Tables.ALL):
//   tables are role-assignment scopes. The host's own diagnostic-events tables
//   (AzureFunctionsDiagnosticEvents<yyyyMM>) get no write access: without it the host logs a
//   warning and turns that feature off (Azure/azure-functions-host#10995, #10996); its
//   events feed only the portal's diagnostics, which cannot read them for identity-based
//   storage anyway (#9569).
//   The readiness check reads one row of the provisioned `integrations` table
//   (core/adapters/tables.py, AzureTableStore.ping), so no account-level table role is needed.
// - Storage Queue Data Contributor is on EACH QUEUE the app uses, poison queues included
//   (queueNames: core.names.Queues.ALL and their -poison queues, all provisioned by
//   infra/core/storage.bicep): queues are role-assignment scopes. The host's queue triggers
//   poll and delete in their queue and move failures to its poison queue; the app enqueues
//   into those queues only; the readiness check reads one queue's properties
//   (core/adapters/queues.py, AzureCommandQueue.ping). Nothing lists or creates queues.
// - The deployment package container, when it lives in its own account (networkMode
//   'ipRules'), gets Storage Blob Data Contributor on that container only.
@description('Object (principal) id of the app\'s user-assigned identity.')
param principalId string

@description('Storage account of the host, the tables and the queues.')
param storageAccountName string

@description('Tables the app reads and writes (core.names.Tables.ALL); each gets its own role assignment.')
param tableNames array

@description('Queues the app and its triggers use, poison queues included; each gets its own role assignment.')
param queueNames array

@description('Storage account holding the deployment package when it is not storageAccountName (empty: same account, covered by Blob Data Owner).')
param deploymentStorageAccountName string = ''

@description('Blob container of the deployment package in deploymentStorageAccountName.')
param deploymentContainerName string = ''

@description('Key Vault holding credentials.')
param keyVaultName string

@description('Separate vault that holds only the webhook key for its Key Vault reference (networkMode ipRules); empty: none.')
param webhookKeyVaultName string = ''

@description('Application Insights component the host sends telemetry to.')
param applicationInsightsName string

@description('Communication Services resource owner alerts are sent through.')
param communicationServiceName string

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  // Host state, timer leases, host keys; the deployment package when it shares the account.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Reading the deployment package from its own account (networkMode 'ipRules').
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  // Queue triggers, poison queues, enqueueing commands (per queue).
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // The service's tables (per table).
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Read and write credentials (refresh tokens, clientState key); no key or certificate rights.
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  // Read-only: resolving the webhook key's Key Vault reference from its own vault.
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  // Entra-authenticated telemetry ingestion (Application Insights local auth is off).
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2024-01-01' existing = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2024-01-01' existing = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2024-01-01' existing = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2024-01-01' existing = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource deploymentStorage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = if (!empty(deploymentStorageAccountName)) {
  name: deploymentStorageAccountName
}

resource deploymentBlobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' existing = if (!empty(deploymentStorageAccountName)) {
  parent: deploymentStorage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' existing = if (!empty(deploymentStorageAccountName)) {
  parent: deploymentBlobService
  name: deploymentContainerName
}

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: keyVaultName
}

resource webhookVault 'Microsoft.KeyVault/vaults@2024-11-01' existing = if (!empty(webhookKeyVaultName)) {
  name: webhookKeyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource communicationService 'Microsoft.Communication/communicationServices@2026-03-18' existing = {
  name: communicationServiceName
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (queueName, i) in queueNames: {
    name: guid(queues[i].id, principalId, roles.storageQueueDataContributor)
    scope: queues[i]
    properties: {
      principalId: principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    }
  }
]

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (tableName, i) in tableNames: {
    name: guid(tables[i].id, principalId, roles.storageTableDataContributor)
    scope: tables[i]
    properties: {
      principalId: principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    }
  }
]

resource deploymentReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deploymentStorageAccountName)) {
  name: guid(deploymentContainer.id, principalId, roles.storageBlobDataContributor)
  scope: deploymentContainer
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

resource webhookSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(webhookKeyVaultName)) {
  name: guid(webhookVault.id, principalId, roles.keyVaultSecretsUser)
  scope: webhookVault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// Sending email with an Entra identity. The only built-in role that allows it,
// "Communication and Email Service Owner", can also delete the resources and list their
// access keys; Microsoft's documented least-privilege alternative is a custom role with
// these three actions (learn.microsoft.com/azure/communication-services/quickstarts/email/send-email-smtp/smtp-authentication),
// assigned on the Communication Services resource only.
resource emailSenderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'acs-email-sender')
  properties: {
    roleName: 'ACS Email Sender (${uniqueString(resourceGroup().id)})'
    description: 'Send email through Azure Communication Services with a Microsoft Entra identity.'
    type: 'customRole'
    permissions: [
      {
        actions: [
          'Microsoft.Communication/CommunicationServices/Read'
          'Microsoft.Communication/CommunicationServices/Write'
          'Microsoft.Communication/EmailServices/write'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource emailSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  // The name keeps its original seed so existing deployments update this assignment in place.
  name: guid(communicationService.id, principalId, emailSenderRole.id)
  scope: communicationService
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    // The canonical subscription-level id, as for the built-in roles above: a role definition
    // deployed from a resource group still lives at /subscriptions/<id>/providers/..., and
    // emailSenderRole.id would be the resource-group-scoped form.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', emailSenderRole.name)
  }
  dependsOn: [emailSenderRole]
}
