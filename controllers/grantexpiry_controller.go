package controllers

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
	"github.com/rolecall/rolecall/internal/seal"
)

// GrantExpiryReconciler deletes a binding rolecall made when its grant's grantDuration has
// passed, at that moment: it asks to be woken when the grant ends rather than polling.
type GrantExpiryReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Sealer tells the bindings rolecall made (whose expiry it sealed) from look-alikes.
	Sealer *seal.Sealer
	// Object is the kind of binding: a RoleBinding or a ClusterRoleBinding; Kind names it.
	Object client.Object
	Kind   string
}

// Reconcile expires one binding, or schedules its expiry.
func (r *GrantExpiryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	binding := r.Object.DeepCopyObject().(client.Object)
	if err := r.Get(ctx, req.NamespacedName, binding); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	expiresAt, ok, err := bindings.EndsAt(binding)
	if !ok || !bindings.Sealed(r.Sealer, binding) {
		// Not a time-bound grant of rolecall's: someone else's binding is theirs to manage.
		return ctrl.Result{}, nil
	}
	if err != nil {
		// The seal covers the annotation, so only rolecall could have written it: leave the
		// binding rather than guess.
		logf.FromContext(ctx).Info("ignoring a binding whose expiry does not parse", "error", err.Error())
		return ctrl.Result{}, nil
	}
	if remaining := expiresAt.Sub(r.Clock.Now()); remaining > 0 {
		return ctrl.Result{RequeueAfter: remaining}, nil
	}
	uid := binding.GetUID()
	if err := r.Delete(ctx, binding, client.Preconditions{UID: &uid}); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.recordExpiry(ctx, binding)
	return ctrl.Result{}, nil
}

// recordExpiry tells the story on the invitation that made the grant, if it still exists.
func (r *GrantExpiryReconciler) recordExpiry(ctx context.Context, binding client.Object) {
	owner, ok := bindings.OwnerOf(binding)
	if !ok {
		return
	}
	inv := &invitesv1alpha1.Invitation{}
	if err := r.Get(ctx, owner.Invitation, inv); err != nil || inv.UID != owner.UID {
		return
	}
	r.Recorder.Eventf(inv, binding, corev1.EventTypeNormal, "GrantExpired", "ExpireGrant",
		"the grant to %s ended after its grantDuration; %s %s was deleted", owner.Username, r.Kind, binding.GetName())
}

// SetupWithManager registers the reconciler for its kind of binding. The manager caches
// only the bindings rolecall made (see manager.CacheOptions).
func (r *GrantExpiryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	managed := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetLabels()[invitesv1alpha1.ManagedByLabel] == invitesv1alpha1.ManagedByValue
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(r.Object, builder.WithPredicates(managed)).
		Named("grantexpiry-" + strings.ToLower(r.Kind)).
		Complete(r)
}
