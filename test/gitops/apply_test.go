package gitops_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// argoFieldManager is the field manager Argo CD's application controller applies with.
const argoFieldManager = "argocd-controller"

var samples = filepath.Join(repoRoot, "config", "samples")

// applySamples applies config/samples the way Argo CD syncs with server-side apply.
func applySamples(ctx context.Context) {
	out, err := runKubectl(ctx, "apply", "--server-side", "--field-manager="+argoFieldManager, "-k", samples)
	Expect(err).NotTo(HaveOccurred(), out)
}

// sampleObjects are the objects config/samples renders to, as Git holds them.
func sampleObjects(ctx context.Context) []*unstructured.Unstructured {
	rendered, err := exec.CommandContext(ctx, kubectl, "kustomize", samples).Output() //nolint:gosec // the control plane's own kubectl
	Expect(err).NotTo(HaveOccurred())
	var objs []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(rendered), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := decoder.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		Expect(err).NotTo(HaveOccurred())
		objs = append(objs, obj)
	}
}

// live reads the objects' current state from the API server.
func live(ctx context.Context, g Gomega, objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		current := &unstructured.Unstructured{}
		current.SetGroupVersionKind(obj.GroupVersionKind())
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(obj), current)).To(Succeed())
		out = append(out, current)
	}
	return out
}

// byObject maps each object to a property of it, by kind, namespace and name.
func byObject(objs []*unstructured.Unstructured, of func(*unstructured.Unstructured) any) map[string]any {
	out := make(map[string]any, len(objs))
	for _, obj := range objs {
		out[obj.GetKind()+" "+obj.GetNamespace()+"/"+obj.GetName()] = of(obj)
	}
	return out
}

func resourceVersion(obj *unstructured.Unstructured) any { return obj.GetResourceVersion() }

// specOf is what Git declares; status writes never change it, so it can be compared while
// rolecall is still working.
func specOf(obj *unstructured.Unstructured) any { return obj.Object["spec"] }

// eventuallyHealthy waits until Argo CD would show every sample that has a health check as
// Healthy: rolecall has issued the invitations' tokens and checked the policies, and
// written all of it to status.
func eventuallyHealthy(ctx context.Context, objs []*unstructured.Unstructured) {
	checks := map[string]string{"Invitation": invitationHealthKey, "RoleGrantPolicy": roleGrantPolicyHealthKey}
	Eventually(func(g Gomega) {
		for _, obj := range live(ctx, g, objs) {
			key, ok := checks[obj.GetKind()]
			if !ok {
				continue
			}
			h, err := runHealthScript(scripts[key], obj.Object)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(h.Status).To(Equal("Healthy"), obj.GetKind()+" "+obj.GetName()+": "+h.Message)
		}
	}).Should(Succeed())
}

// The specs share the samples' fixed names, so they run in order on one set of objects;
// each checks a property of its own, so a failure does not skip the rest.
var _ = Describe("Server-side applying config/samples as Argo CD syncs them", Ordered, ContinueOnFailure, func() {
	var objs []*unstructured.Unstructured
	BeforeAll(func(ctx SpecContext) {
		objs = sampleObjects(ctx)
		Expect(objs).NotTo(BeEmpty())
		applySamples(ctx)
	})

	Context("when applied again at once", func() {
		It("leaves every spec as the first apply stored it", func(ctx SpecContext) {
			// Anything that rewrites spec on the way in (an admission webhook normalising a
			// field, say) shows up here as a difference Git would then keep correcting.
			before := byObject(live(ctx, Default, objs), specOf)
			applySamples(ctx)
			after := byObject(live(ctx, Default, objs), specOf)
			for key, spec := range before {
				Expect(after[key]).To(Equal(spec), "the second apply changed the spec of %s", key)
			}
		})
	})

	Context("when applied again after rolecall has written status", func() {
		It("changes nothing: the same resourceVersions, and no diff", func(ctx SpecContext) {
			eventuallyHealthy(ctx, objs)
			before := byObject(live(ctx, Default, objs), resourceVersion)
			applySamples(ctx)
			Expect(byObject(live(ctx, Default, objs), resourceVersion)).To(Equal(before))

			out, err := runKubectl(ctx, "diff", "--server-side", "--field-manager="+argoFieldManager, "-k", samples)
			Expect(err).NotTo(HaveOccurred(), "kubectl diff exits 0 only when it finds no difference:\n"+out)
		})

		It("shares no field between Git and rolecall: rolecall writes only through the status subresource", func(ctx SpecContext) {
			for _, obj := range live(ctx, Default, objs) {
				for _, entry := range obj.GetManagedFields() {
					if entry.Manager == argoFieldManager {
						Expect(string(entry.FieldsV1.GetRawBytes())).NotTo(ContainSubstring(`"f:status"`), obj.GetName())
						continue
					}
					Expect(entry.Subresource).To(Equal("status"), "%s %s: %s wrote %s", obj.GetKind(), obj.GetName(), entry.Manager, entry.FieldsV1.GetRawBytes())
				}
			}
		})
	})
})
