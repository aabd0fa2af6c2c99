"""Local HTTPS emulators of Salesforce, HubSpot and Planhat."""
