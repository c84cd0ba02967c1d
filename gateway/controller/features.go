package controller

import (
	"encoding/json"
	"reflect"
	"sort"

	"sigs.k8s.io/controller-runtime/pkg/controller"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// Features are the Gateway API features Sentinel claims: the core of the
// GATEWAY-HTTP profile and the extended HTTPRoute features the
// conformance run passes (docs/gateway-api.md).
var Features = []features.FeatureName{
	features.SupportGateway,
	features.SupportReferenceGrant,
	features.SupportHTTPRoute,
	features.SupportGRPCRoute,
	features.SupportTLSRoute,
	features.SupportTCPRoute,
	features.SupportGRPCRouteNamedRouteRule,
	features.SupportHTTPRouteBackendProtocolH2C,
	features.SupportHTTPRouteQueryParamMatching,
	features.SupportHTTPRouteMethodMatching,
	features.SupportHTTPRouteResponseHeaderModification,
	features.SupportHTTPRoutePortRedirect,
	features.SupportHTTPRouteSchemeRedirect,
	features.SupportHTTPRoutePathRedirect,
	features.SupportHTTPRouteHostRewrite,
	features.SupportHTTPRoutePathRewrite,
	features.SupportHTTPRoute303RedirectStatusCode,
	features.SupportHTTPRoute307RedirectStatusCode,
	features.SupportHTTPRoute308RedirectStatusCode,
	features.SupportHTTPRouteParentRefPort,
	features.SupportHTTPRouteNamedRouteRule,
	features.SupportGatewayPort8080,
	features.SupportHTTPRouteRequestTimeout,
	features.SupportHTTPRouteBackendTimeout,
	features.SupportHTTPRouteRetry,
	features.SupportHTTPRouteBackendRequestHeaderModification,
}

// SupportedFeatures is Features as a GatewayClass status lists them
// (sorted by name).
func SupportedFeatures() []gwv1.SupportedFeature {
	out := make([]gwv1.SupportedFeature, 0, len(Features))
	for _, f := range Features {
		out = append(out, gwv1.SupportedFeature{Name: gwv1.FeatureName(f)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// controllerOpts are the controllers' options.
func controllerOpts(skipNameValidation *bool) controller.Options {
	return controller.Options{SkipNameValidation: skipNameValidation}
}

// equalJSON compares two statuses as the API server stores them.
func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return reflect.DeepEqual(a, b)
	}
	return string(x) == string(y)
}
