// Azure Communication Services Email for owner alerts, on an Azure-managed domain
// (<guid>.azurecomm.net): no DNS work for the admin. A custom domain can be linked later.
@description('Name of the Email Communication Service.')
param emailServiceName string

@description('Name of the Communication Services resource the app sends through.')
param communicationServiceName string

@description('Where email data is stored at rest.')
param dataLocation string

@description('Tags applied to the email resources.')
param tags object

resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource managedDomain 'Microsoft.Communication/emailServices/domains@2023-04-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource communicationService 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    linkedDomains: [
      managedDomain.id
    ]
  }
}

output communicationServiceName string = communicationService.name
output endpoint string = 'https://${communicationService.properties.hostName}'
// Azure-managed domains send from DoNotReply@<mailFromSenderDomain>.
output senderAddress string = 'DoNotReply@${managedDomain.properties.mailFromSenderDomain}'
