// Package deploy holds the tests of Sentinel's deployment artefacts: the
// Helm chart in charts/sentinel, the Dockerfile and the chart packaging.
//
// The tests use Helm as a library (helm.sh/helm/v3, pinned in go.mod): they
// lint the chart strictly, render it for the default values and for every
// value set in testdata/values, decode every manifest strictly into the
// k8s.io/api types, adapt the rendered sentinel.kdl with the project's KDL
// adapter, and start the sentinel binary (built with CGO_ENABLED=0) on it
// to check that the probe paths answer. `go test -short` skips the binary.
//
// The values table of the READMEs is generated from the comments of
// values.yaml:
//
//	go test ./deploy -run TestValuesTable -update
package deploy
