package policy_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// expectSchemaBounds holds the cost estimate's sizes at path to the limits schema declares.
func expectSchemaBounds(schema map[string]any, path []string) {
	GinkgoHelper()
	where := strings.Join(path, ".")
	limit, scalar, known := policy.Bound(path...)
	Expect(known).To(BeTrue(), "the estimate knows nothing of %s", where)
	number := func(key string) uint64 {
		v, ok := schema[key].(float64)
		Expect(ok).To(BeTrue(), "%s declares no %s", where, key)
		return uint64(v)
	}
	switch schema["type"] {
	case "string":
		if enum, ok := schema["enum"].([]any); ok {
			longest := 0
			for _, v := range enum {
				longest = max(longest, len(v.(string)))
			}
			Expect(limit).To(BeEquivalentTo(longest), where)
			return
		}
		Expect(limit).To(Equal(number("maxLength")), where)
	case "integer", "boolean":
		Expect(scalar).To(BeTrue(), where)
	case "array":
		Expect(limit).To(Equal(number("maxItems")), where)
		expectSchemaBounds(schema["items"].(map[string]any), append(slices.Clone(path), "@items"))
	case "object":
		if values, ok := schema["additionalProperties"].(map[string]any); ok {
			Expect(limit).To(Equal(number("maxProperties")), where)
			expectSchemaBounds(values, append(slices.Clone(path), "@values"))
			return
		}
		properties, _ := schema["properties"].(map[string]any)
		Expect(limit).To(BeEquivalentTo(len(properties)), "%s has other fields than the schema", where)
		for name, property := range properties {
			expectSchemaBounds(property.(map[string]any), append(slices.Clone(path), name))
		}
	default:
		Fail("unexpected schema type at " + where)
	}
}

// fill sets every field of v, recursively, so that a field added to the API shows up in
// the rules' variables.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		key, value := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(key)
		fill(value)
		v.SetMapIndex(key, value)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	}
}

// expectVariableBounds checks that the estimate knows the size of every value a rule can
// read, and that the value fits it.
func expectVariableBounds(value any, path []string) {
	GinkgoHelper()
	where := strings.Join(path, ".")
	limit, scalar, known := policy.Bound(path...)
	Expect(known).To(BeTrue(), "the estimate knows nothing of %s", where)
	switch v := value.(type) {
	case map[string]any:
		Expect(uint64(len(v))).To(BeNumerically("<=", limit), where)
		for k, item := range v {
			if _, _, field := policy.Bound(append(slices.Clone(path), k)...); field {
				expectVariableBounds(item, append(slices.Clone(path), k))
			} else {
				expectVariableBounds(item, append(slices.Clone(path), "@values"))
			}
		}
	case []any:
		Expect(uint64(len(v))).To(BeNumerically("<=", limit), where)
		for _, item := range v {
			expectVariableBounds(item, append(slices.Clone(path), "@items"))
		}
	case []string:
		Expect(uint64(len(v))).To(BeNumerically("<=", limit), where)
		for _, item := range v {
			expectVariableBounds(item, append(slices.Clone(path), "@items"))
		}
	case string:
		Expect(utf8.RuneCountInString(v)).To(BeNumerically("<=", limit), where)
	default:
		Expect(scalar).To(BeTrue(), "%s is a %T", where, value)
	}
}

var _ = Describe("The sizes the cost estimate assumes", func() {
	It("are the limits the Invitation schema declares", func() {
		data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "invites.rolecall.dev_invitations.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var crd struct {
			Spec struct {
				Versions []struct {
					Schema struct {
						OpenAPIV3Schema struct {
							Properties map[string]map[string]any `json:"properties"`
						} `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		Expect(yaml.Unmarshal(data, &crd)).To(Succeed())
		Expect(crd.Spec.Versions).To(HaveLen(1))
		spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		expectSchemaBounds(spec, []string{policy.InvitationVariable, "spec"})
		expectSchemaBounds(spec["properties"].(map[string]any)["inviter"].(map[string]any), []string{policy.InviterVariable})
	})

	It("allow as many grant namespaces as grants, each a Namespace", func() {
		grants, _, _ := policy.Bound(policy.InvitationVariable, "spec", "grants")
		namespaces, _, known := policy.Bound(policy.NamespacesVariable)
		Expect(known).To(BeTrue())
		Expect(namespaces).To(Equal(grants), "each grant lands in at most one namespace")
		name, _, _ := policy.Bound(policy.NamespacesVariable, "@items", "metadata", "name")
		Expect(name).To(BeEquivalentTo(63))
		annotations, _, _ := policy.Bound(policy.NamespacesVariable, "@items", "metadata", "annotations")
		objectAnnotations, _, _ := policy.Bound(policy.NamespaceVariable, "metadata", "annotations")
		Expect(annotations).To(Equal(objectAnnotations))
	})

	It("cover every value a rule can read", func() {
		inv := &invitesv1alpha1.Invitation{}
		fill(reflect.ValueOf(&inv.Spec).Elem())
		inv.ObjectMeta = metav1.ObjectMeta{Name: "x", Namespace: "x", Labels: map[string]string{"x": "x"}, Annotations: map[string]string{"x": "x"}}
		inviter := invitesv1alpha1.Inviter{}
		fill(reflect.ValueOf(&inviter).Elem())
		vars, err := policy.RuleVariables(policy.Request{
			Invitation: inv, Inviter: inviter,
			Namespaces: map[string]*corev1.Namespace{"x": {ObjectMeta: metav1.ObjectMeta{
				Name: "x", Labels: map[string]string{"x": "x"}, Annotations: map[string]string{"x": "x"},
			}}},
		})
		Expect(err).NotTo(HaveOccurred())
		for name, value := range vars {
			expectVariableBounds(value, []string{name})
		}
	})
})
