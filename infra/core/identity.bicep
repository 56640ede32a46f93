// The one user-assigned identity of the app. It reaches storage, Key Vault, Application
// Insights and email, and is the federated credential of the app registration, so no
// secret exists anywhere. User-assigned (not system-assigned) because only user-assigned
// identities can be federated credentials, and it outlives a re-created function app.
@description('Name of the user-assigned managed identity.')
param name string

@description('Region of the identity.')
param location string

@description('Tags applied to the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
