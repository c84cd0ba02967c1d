package kdladapter

// GeneratedConfig is generatedConfig for the external test package.
var GeneratedConfig = generatedConfig
