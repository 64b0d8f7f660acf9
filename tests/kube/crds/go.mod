// The projects whose CustomResourceDefinitions the real-server tests install,
// at pinned releases (tests/kube/src/crds.rs reads the files from the module
// cache; `go mod download -json` here fetches and verifies them). Nothing here
// is compiled.
module capt-status/tests/kube/crds

go 1.26.0

require sigs.k8s.io/cluster-api v1.14.2
