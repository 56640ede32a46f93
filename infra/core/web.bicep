// The web console (web/dist): an Azure Static Web App on the Free plan. Static files only,
// no server code, no secrets; the console calls the API cross-origin with MSAL tokens, so
// main.bicep adds this site's origin to the API's CORS origins. azd deploys web/dist to
// the site tagged azd-service-name: web (docs/web-console.md).
@description('Name of the static web app.')
param name string

@allowed(['westus2', 'centralus', 'eastus2', 'westeurope', 'eastasia'])
@description('Region that holds the static web app\'s metadata (the files are served from a global edge either way).')
param location string

@description('Tags applied to the static web app.')
param tags object

resource site 'Microsoft.Web/staticSites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'web' })
  sku: {
    name: 'Free'
    tier: 'Free'
  }
  properties: {
    allowConfigFileUpdates: true
    stagingEnvironmentPolicy: 'Disabled'
    publicNetworkAccess: 'Enabled'
  }
}

output name string = site.name
output url string = 'https://${site.properties.defaultHostname}'
