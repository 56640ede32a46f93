// Azure Communication Services Email for owner alerts, on an Azure-managed domain
// (<guid>.azurecomm.net): no DNS work for the admin. A custom domain can be linked later.
// Entra-only: access keys are disabled, so only identities with the email sender role send.
@description('Name of the Email Communication Service.')
param emailServiceName string

@description('Name of the Communication Services resource the app sends through.')
param communicationServiceName string

@description('Where email data is stored at rest.')
param dataLocation string

@description('Tags applied to the email resources.')
param tags object

resource emailService 'Microsoft.Communication/emailServices@2026-03-18' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource managedDomain 'Microsoft.Communication/emailServices/domains@2026-03-18' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource communicationService 'Microsoft.Communication/communicationServices@2026-03-18' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    linkedDomains: [
      managedDomain.id
    ]
    // Access keys (connection strings) off: the app sends with its managed identity only.
    // 2023-04-01 had no way to turn them off; disableLocalAuth arrived in a later version.
    disableLocalAuth: true
  }
}

output communicationServiceName string = communicationService.name
output endpoint string = 'https://${communicationService.properties.hostName}'
// Azure-managed domains send from DoNotReply@<mailFromSenderDomain>.
output senderAddress string = 'DoNotReply@${managedDomain.properties.mailFromSenderDomain}'
