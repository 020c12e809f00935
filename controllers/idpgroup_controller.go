package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
	"github.com/rolecall/rolecall/internal/delivery"
	"github.com/rolecall/rolecall/internal/metrics"
	"github.com/rolecall/rolecall/internal/seal"
)

// IDPGroupReconciler keeps identity provider group memberships in step with the bindings
// that carry an idpGroup: the hook adds the user when the binding appears and removes them
// when it goes (grant expiry, revokeGrants, upgrade Replace, deletion by hand). A finalizer
// on the binding holds it until the "remove" succeeded; while it waits, the binding's
// subjects are emptied so that the Kubernetes access ends at once. A failed call returns an
// error, so the work queue retries it with exponential backoff.
type IDPGroupReconciler struct {
	client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// Hook calls the identity provider; nil when the manager has no --idp-hook-url.
	Hook *delivery.IDPHook
	// Sealer tells the bindings rolecall made from look-alikes: only a sealed binding
	// drives the hook, and the user and group come from what the seal covers.
	Sealer *seal.Sealer
	// Object is the kind of binding: a RoleBinding or a ClusterRoleBinding.
	Object client.Object
	Kind   string

	// gone remembers bindings deleted without their finalizer, whose "remove" is owed.
	gone gone
}

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings;clusterrolebindings,verbs=patch

// Reconcile adds or removes the membership of one binding.
func (r *IDPGroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	binding := r.Object.DeepCopyObject().(client.Object)
	err := r.Get(ctx, req.NamespacedName, binding)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, r.removeGone(ctx, req.NamespacedName)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	owner, m, ok := r.sealedMembership(binding)
	if !ok {
		// Anyone who may create bindings can copy rolecall's labels, annotations and
		// finalizer; only a binding rolecall sealed is rolecall's to act on.
		logf.FromContext(ctx).V(1).Info("ignoring a binding that looks like rolecall's but was not made by it")
		return ctrl.Result{}, nil
	}
	if !owesHookCall(binding) {
		return ctrl.Result{}, nil
	}
	// The cache may not show this controller's own last write yet; a live read keeps the
	// hook from being called twice for the same change.
	if err := r.APIReader.Get(ctx, req.NamespacedName, binding); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	switch {
	case !binding.GetDeletionTimestamp().IsZero():
		return ctrl.Result{}, r.leave(ctx, binding, owner, m)
	case !controllerutil.ContainsFinalizer(binding, invitesv1alpha1.IDPGroupFinalizer):
		// Stripped by someone: put it back, so that deleting the binding ends the membership.
		return ctrl.Result{}, r.restoreFinalizer(ctx, binding)
	case !owesHookCall(binding):
		return ctrl.Result{}, nil
	}
	if granting, err := r.stillGranting(ctx, binding, owner); err != nil || !granting {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.join(ctx, binding, owner, m)
}

// sealedMembership reads the membership a binding stands for, if rolecall sealed it and it
// names an idpGroup; every fact comes from what the seal covers.
func (r *IDPGroupReconciler) sealedMembership(binding client.Object) (bindings.Owner, delivery.Membership, bool) {
	group := binding.GetAnnotations()[invitesv1alpha1.IDPGroupAnnotation]
	owner, ok := bindings.OwnerOf(binding)
	if group == "" || !ok || !bindings.Sealed(r.Sealer, binding) {
		return bindings.Owner{}, delivery.Membership{}, false
	}
	return owner, delivery.Membership{
		User: owner.Username, Group: group, Invitation: owner.Invitation.Name, Namespace: owner.Invitation.Namespace,
	}, true
}

// owesHookCall: a binding being deleted (its membership ends), one whose finalizer is
// missing (it must be restored), or one whose membership is not added yet.
func owesHookCall(binding client.Object) bool {
	return !binding.GetDeletionTimestamp().IsZero() || !controllerutil.ContainsFinalizer(binding, invitesv1alpha1.IDPGroupFinalizer) ||
		binding.GetAnnotations()[invitesv1alpha1.IDPGroupAddedAnnotation] == ""
}

func (r *IDPGroupReconciler) restoreFinalizer(ctx context.Context, binding client.Object) error {
	patch := client.MergeFromWithOptions(binding.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(binding, invitesv1alpha1.IDPGroupFinalizer)
	return client.IgnoreNotFound(r.Patch(ctx, binding, patch))
}

// stillGranting says the membership may be added now: the binding is the very one its
// redemption created (not a copy recreated later from its labels, annotations and seal),
// its grant has not ended, the invitation that made it still exists (the same one, by UID)
// and is not revoked, and the binding still binds its role to the user the seal names.
func (r *IDPGroupReconciler) stillGranting(ctx context.Context, binding client.Object, owner bindings.Owner) (bool, error) {
	if !bindings.MadeByItsRedemption(binding) || bindings.Expired(binding, r.Clock.Now()) {
		return false, nil
	}
	inv := &invitesv1alpha1.Invitation{}
	err := r.APIReader.Get(ctx, owner.Invitation, inv)
	if client.IgnoreNotFound(err) != nil {
		return false, err
	}
	if err != nil || inv.UID != owner.UID || inv.Spec.Revoked || !inv.DeletionTimestamp.IsZero() {
		return false, nil
	}
	return bindsOnly(binding, owner.Username), nil
}

// bindsOnly says the binding's subjects are exactly the one user.
func bindsOnly(binding client.Object, username string) bool {
	var subjects []rbacv1.Subject
	switch b := binding.(type) {
	case *rbacv1.RoleBinding:
		subjects = b.Subjects
	case *rbacv1.ClusterRoleBinding:
		subjects = b.Subjects
	}
	return len(subjects) == 1 && subjects[0].Kind == rbacv1.UserKind && subjects[0].Name == username
}

func (r *IDPGroupReconciler) join(ctx context.Context, binding client.Object, owner bindings.Owner, m delivery.Membership) error {
	if r.Hook == nil {
		r.report(ctx, owner, metav1.ConditionFalse, invitesv1alpha1.InvitationIDPHookNotConfiguredReason,
			fmt.Sprintf("grants name idpGroup %s, but the manager has no --idp-hook-url: %s was not added", m.Group, m.User))
		return nil
	}
	if err := r.Hook.Add(ctx, m); err != nil {
		// A refusal (4xx) is reported and not retried: asking again gets the same answer.
		return r.failed(ctx, "add", owner, m, err)
	}
	metrics.IDPHookCalls.WithLabelValues("add", "ok").Inc()
	patch := client.MergeFrom(binding.DeepCopyObject().(client.Object))
	annotations := binding.GetAnnotations()
	annotations[invitesv1alpha1.IDPGroupAddedAnnotation] = r.Clock.Now().UTC().Format(time.RFC3339)
	binding.SetAnnotations(annotations)
	if err := r.Patch(ctx, binding, patch); err != nil {
		// Adding again is harmless for the receiver; losing the record would skip the remove.
		return err
	}
	r.report(ctx, owner, metav1.ConditionTrue, invitesv1alpha1.InvitationIDPGroupAddedReason,
		fmt.Sprintf("%s was added to identity provider group %s", m.User, m.Group))
	return nil
}

// leave ends the Kubernetes access first (no subjects), then the membership, then lets the
// binding go. The "remove" is sent whether or not the binding records that the "add" went
// through: that record is an annotation anyone who may patch the binding can strip, and
// removing someone who is not a member is harmless to a receiver.
func (r *IDPGroupReconciler) leave(ctx context.Context, binding client.Object, owner bindings.Owner, m delivery.Membership) error {
	if err := r.emptySubjects(ctx, binding); err != nil {
		return err
	}
	if r.Hook != nil {
		if err := r.removeMembership(ctx, owner, m); err != nil {
			return err
		}
	}
	r.gone.markLeft(binding.GetUID())
	patch := client.MergeFromWithOptions(binding.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(binding, invitesv1alpha1.IDPGroupFinalizer)
	return client.IgnoreNotFound(r.Patch(ctx, binding, patch))
}

// removeMembership asks the hook to remove the membership. A failure worth retrying is
// returned; a refusal is reported as final (the membership must be removed by hand).
func (r *IDPGroupReconciler) removeMembership(ctx context.Context, owner bindings.Owner, m delivery.Membership) error {
	err := r.Hook.Remove(ctx, m)
	if err != nil && !delivery.IsPermanent(err) {
		return r.failed(ctx, "remove", owner, m, err)
	}
	if err != nil {
		// Refused for good: the binding goes anyway rather than linger; the condition
		// and the Event tell people to remove the membership by hand.
		_ = r.failed(ctx, "remove", owner, m, err)
		return nil
	}
	metrics.IDPHookCalls.WithLabelValues("remove", "ok").Inc()
	r.report(ctx, owner, metav1.ConditionTrue, invitesv1alpha1.InvitationIDPGroupRemovedReason,
		fmt.Sprintf("%s was removed from identity provider group %s", m.User, m.Group))
	return nil
}

// emptySubjects matters because the API server's RBAC still honours a binding that is
// being deleted: without it, a hook that is down would keep the grant alive.
func (r *IDPGroupReconciler) emptySubjects(ctx context.Context, binding client.Object) error {
	patch := client.MergeFrom(binding.DeepCopyObject().(client.Object))
	switch b := binding.(type) {
	case *rbacv1.RoleBinding:
		if len(b.Subjects) == 0 {
			return nil
		}
		b.Subjects = nil
	case *rbacv1.ClusterRoleBinding:
		if len(b.Subjects) == 0 {
			return nil
		}
		b.Subjects = nil
	}
	return client.IgnoreNotFound(r.Patch(ctx, binding, patch))
}

// failed reports a hook failure. One worth retrying returns an error, so the work queue
// tries again with exponential backoff; a refusal is reported as final and returns nil.
func (r *IDPGroupReconciler) failed(ctx context.Context, action string, owner bindings.Owner, m delivery.Membership, err error) error {
	if delivery.IsPermanent(err) {
		metrics.IDPHookCalls.WithLabelValues(action, "failed").Inc()
		r.report(ctx, owner, metav1.ConditionFalse, invitesv1alpha1.InvitationIDPHookFailedReason,
			fmt.Sprintf("the identity provider hook refused to %s %s (group %s), not retried: %v; fix it in the identity provider by hand", action, m.User, m.Group, err))
		return nil
	}
	metrics.IDPHookCalls.WithLabelValues(action, "retrying").Inc()
	r.report(ctx, owner, metav1.ConditionFalse, invitesv1alpha1.InvitationIDPHookFailedReason,
		fmt.Sprintf("the identity provider hook could not %s %s (group %s), retrying: %v", action, m.User, m.Group, err))
	return fmt.Errorf("identity provider hook, %s %s to %s: %w", action, m.User, m.Group, err)
}

// report records the latest outcome in the invitation's IDPGroupsSynced condition and as an
// Event, when the invitation that made the binding (the same one, by UID) still exists.
func (r *IDPGroupReconciler) report(ctx context.Context, owner bindings.Owner, status metav1.ConditionStatus, reason, message string) {
	inv := &invitesv1alpha1.Invitation{}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := r.APIReader.Get(ctx, owner.Invitation, inv); err != nil {
			return err
		}
		if inv.UID != owner.UID {
			return errOtherInvitation
		}
		before := inv.DeepCopy()
		meta.SetStatusCondition(&inv.Status.Conditions, metav1.Condition{
			Type: invitesv1alpha1.InvitationIDPGroupsCondition, Status: status, Reason: reason, Message: message,
			ObservedGeneration: inv.Generation,
		})
		return r.Status().Patch(ctx, inv, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return
	}
	eventType := corev1.EventTypeNormal
	if status == metav1.ConditionFalse {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(inv, nil, eventType, reason, "SyncIDPGroup", "%s", message)
}

// errOtherInvitation: an invitation of the same name exists, but not the one that made the
// binding; it hears nothing about bindings that are not its own.
var errOtherInvitation = errors.New("the invitation that made the binding no longer exists")

// SetupWithManager watches the bindings rolecall made for one kind of binding.
func (r *IDPGroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	withGroup := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetAnnotations()[invitesv1alpha1.IDPGroupAnnotation] != ""
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(r.Object, builder.WithPredicates(withGroup)).
		Watches(r.Object, handler.Funcs{DeleteFunc: r.rememberDeleted}, builder.WithPredicates(withGroup)).
		Named("idpgroup-" + strings.ToLower(r.Kind)).
		Complete(r)
}
