// Credentials only: per-user refresh tokens, the clientState signing key, the webhook
// function key. RBAC authorization (no access policies), soft delete and purge protection
// so a deleted vault or secret can be recovered and never silently destroyed.
@description('Name of the vault (3-24 characters).')
param name string

@description('Region of the vault.')
param location string

@description('Tags applied to the vault.')
param tags object

@description('Log Analytics workspace that receives the vault audit log.')
param logAnalyticsWorkspaceId string

@minValue(7)
@maxValue(90)
@description('Days a deleted vault or secret can be recovered.')
param softDeleteRetentionInDays int = 90

@allowed(['default', 'recover'])
@description('recover brings back a soft-deleted vault of the same name (after azd down; infra/hooks/preprovision.sh detects it), default creates or updates.')
param createMode string = 'default'

@description('Subnet of the function app\'s virtual network integration allowed through the firewall; empty leaves the vault on its public endpoint (Entra RBAC only).')
param allowedSubnetId string = ''

@description('Public IP addresses or CIDR ranges allowed through the firewall when allowedSubnetId is set (admin workstations, CI).')
param allowedIpRanges array = []

// Network-restricted when a subnet is given: only the function app's subnet (service
// endpoint Microsoft.KeyVault) and the listed addresses reach the data plane. Key Vault
// references are resolved by the platform, outside the VNet, so a restricted vault cannot
// back one on Flex Consumption; main.bicep keeps the webhook key's reference in a separate
// unrestricted vault in that mode (docs/deploy.md, "Network isolation").
var restricted = !empty(allowedSubnetId)

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    createMode: createMode
    publicNetworkAccess: 'Enabled'
    networkAcls: restricted ? {
      bypass: 'AzureServices'
      defaultAction: 'Deny'
      ipRules: [for ipRange in allowedIpRanges: { value: ipRange }]
      virtualNetworkRules: [
        { id: allowedSubnetId, ignoreMissingVnetServiceEndpoint: false }
      ]
    } : {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { categoryGroup: 'audit', enabled: true }
    ]
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
