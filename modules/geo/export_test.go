package geo

// WriteTestDB writes a test database (for the package's external tests).
var WriteTestDB = writeDB

// TestNetworks are the networks of the test databases.
var TestNetworks = testNetworks
