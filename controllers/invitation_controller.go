// Package controllers holds rolecall's reconcilers: one per kind.
package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
	"github.com/rolecall/rolecall/internal/seal"
)

// customTokenSecretIndex indexes Invitations by the name of their Custom token Secret, so a
// change to that Secret wakes exactly the invitations that use it.
const customTokenSecretIndex = "spec.customTokenSecretRef.name"

// InvitationReconciler issues each Invitation's token into a Secret it owns, keeps the
// derived phase and conditions in status, and schedules the moment it expires.
// It never writes spec, so GitOps tools see no drift.
type InvitationReconciler struct {
	client.Client
	// Live reads and writes past the cache, for bindings: caching every RoleBinding in the
	// cluster would cost memory for nothing.
	Live client.Client
	// APIReader reads past the cache: to confirm a token Secret is really gone before
	// issuing a new one, and to tell users that a Custom token Secret exists but lacks
	// the label the cache selects on.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// Authorizer re-checks, on every pass, that the inviter may still offer the invitation.
	Authorizer *policy.Authorizer
	// Sealer signs the token facts the controller records and verifies what it reads back
	// from status and bindings: both can be written by people rolecall must not trust.
	Sealer *seal.Sealer
	// PublicURL is the redemption server's external base URL; links are PublicURL/i/<token>.
	PublicURL string
	// DefaultExpiresAfter applies when spec.expiresAfter is unset.
	DefaultExpiresAfter time.Duration

	// Workers is how many invitations are reconciled at once (never the same one twice).
	Workers int
}

// +kubebuilder:rbac:groups=invites.rolecall.dev,resources=invitations,verbs=get;list;watch
// +kubebuilder:rbac:groups=invites.rolecall.dev,resources=invitations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=invites.rolecall.dev,resources=rolegrantpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconcile brings one Invitation's token and status up to date.
func (r *InvitationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	inv := &invitesv1alpha1.Invitation{}
	if err := r.Get(ctx, req.NamespacedName, inv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !inv.DeletionTimestamp.IsZero() {
		return r.finishDeletion(ctx, inv)
	}
	if changed, err := r.keepFinalizer(ctx, inv); changed || err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if terminating, err := r.namespaceTerminating(ctx, inv.Namespace); terminating || err != nil {
		// The namespace is going, invitation and token Secret with it: issuing a token
		// whose Secret cannot be created would only wake this controller again and again.
		return ctrl.Result{}, wrap("reading the namespace", err)
	}

	before := inv.DeepCopy()
	lifetimeEnd, err := r.checkPolicy(ctx, inv)
	if err != nil {
		return ctrl.Result{}, wrap("checking policy", err)
	}
	plan, err := r.planToken(ctx, inv)
	if err != nil {
		return ctrl.Result{}, wrap("planning the token", err)
	}
	now := r.Clock.Now()
	pendingDue, err := r.settlePending(ctx, inv, now, false)
	if err != nil {
		return ctrl.Result{}, wrap("settling claims", err)
	}
	updateStatus(inv, r.expiresAfter(inv), lifetimeEnd, now)
	r.sealToken(inv, plan)
	if !equality.Semantic.DeepEqual(before.Status, inv.Status) {
		// Status is written anyway: every finished redemption's entry goes with it.
		if pendingDue, err = r.settlePending(ctx, inv, now, true); err != nil {
			return ctrl.Result{}, wrap("settling claims", err)
		}
	}
	if err := r.patchStatus(ctx, before, inv); err != nil {
		// A conflict means this pass worked from a stale copy and wrote nothing, not even
		// the token. The newer version's own watch event brings this invitation back with
		// fresh data; that is routine while redemptions write status, not an error.
		// Not found: the invitation went meanwhile; there is nothing left to write.
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, wrap("writing status", err)
	}
	if err := r.applyToken(ctx, inv, plan); err != nil {
		return ctrl.Result{}, wrap("writing the token Secret", err)
	}
	if revokesGrants(inv) {
		if err := r.revokeGrants(ctx, inv); err != nil {
			return ctrl.Result{}, wrap("revoking grants", err)
		}
	}
	r.recordTransition(before, inv)
	return soonest(scheduleExpiry(inv, now), pendingDue), nil
}

// wrap names the step that failed, so the controller's error log says what it was doing.
func wrap(step string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", step, err)
}

// namespaceTerminating says the invitation's namespace is being deleted.
func (r *InvitationReconciler) namespaceTerminating(ctx context.Context, name string) (bool, error) {
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return ns.Status.Phase == corev1.NamespaceTerminating || !ns.DeletionTimestamp.IsZero(), nil
}

// soonest wakes the reconciler for whichever comes first: expiry or a pending claim.
func soonest(result ctrl.Result, due time.Duration) ctrl.Result {
	if due > 0 && (result.RequeueAfter == 0 || due < result.RequeueAfter) {
		result.RequeueAfter = due
	}
	return result
}

func (r *InvitationReconciler) expiresAfter(inv *invitesv1alpha1.Invitation) time.Duration {
	if inv.Spec.ExpiresAfter != nil {
		return inv.Spec.ExpiresAfter.Duration
	}
	return r.DefaultExpiresAfter
}

// scheduleExpiry asks to be called again the moment an active invitation expires, instead
// of polling. The delay is never zero or negative: an expired invitation needs no wake-up.
func scheduleExpiry(inv *invitesv1alpha1.Invitation, now time.Time) ctrl.Result {
	if inv.Status.Phase != invitesv1alpha1.PhaseActive || inv.Status.ExpiresAt == nil {
		return ctrl.Result{}
	}
	remaining := inv.Status.ExpiresAt.Sub(now)
	if remaining <= 0 {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: remaining}
}

// patchStatus writes status once per pass, and only if it changed. The optimistic lock
// matters twice: the redemption server also writes status (uses), and a phase derived from
// a stale copy must not land on top of a newer count; and a token decided from a stale copy
// must not be issued at all (see tokenPlan).
func (r *InvitationReconciler) patchStatus(ctx context.Context, before, after *invitesv1alpha1.Invitation) error {
	if equality.Semantic.DeepEqual(before.Status, after.Status) {
		return nil
	}
	patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	return r.Status().Patch(ctx, after, patch)
}

// SetupWithManager registers the reconciler: it watches Invitations, the token Secrets they
// own, and the Custom token Secrets they reference.
func (r *InvitationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &invitesv1alpha1.Invitation{}, customTokenSecretIndex,
		func(obj client.Object) []string {
			inv := obj.(*invitesv1alpha1.Invitation)
			if inv.Spec.CustomTokenSecretRef == nil {
				return nil
			}
			return []string{inv.Spec.CustomTokenSecretRef.Name}
		})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&invitesv1alpha1.Invitation{}).
		Owns(&corev1.Secret{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.invitationsUsingCustomToken),
			builder.WithPredicates(predicate.NewPredicateFuncs(isCustomTokenSecret))).
		Watches(&invitesv1alpha1.RoleGrantPolicy{}, handler.EnqueueRequestsFromMapFunc(r.invitationsForPolicy),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&rbacv1.RoleBinding{}, handler.EnqueueRequestsFromMapFunc(r.invitationOfNewBinding), onlyCreated).
		Watches(&rbacv1.ClusterRoleBinding{}, handler.EnqueueRequestsFromMapFunc(r.invitationOfNewBinding), onlyCreated).
		Named("invitation").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.Workers)}).
		Complete(r)
}

// onlyCreated passes creations: a revoked invitation cares about bindings that appear.
var onlyCreated = builder.WithPredicates(predicate.Funcs{
	UpdateFunc:  func(event.UpdateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
})

func isCustomTokenSecret(obj client.Object) bool {
	return obj.GetLabels()[invitesv1alpha1.TokenLabel] == invitesv1alpha1.TokenLabelCustom
}

func (r *InvitationReconciler) invitationsUsingCustomToken(ctx context.Context, secret client.Object) []reconcile.Request {
	var list invitesv1alpha1.InvitationList
	if err := r.List(ctx, &list, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{customTokenSecretIndex: secret.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "listing invitations that use a custom token secret", "secret", secret.GetName())
		return nil
	}
	requests := make([]reconcile.Request, 0, len(list.Items))
	for _, inv := range list.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&inv)})
	}
	return requests
}
