// Package bindings makes the RoleBindings and ClusterRoleBindings an invitation promises, one
// per (invitation, user, grant), with names that make re-redeeming idempotent.
package bindings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// Labels and annotations on every binding rolecall makes.
const (
	// InvitationUIDLabel is the UID of the invitation that made the binding.
	InvitationUIDLabel = "invites.rolecall.dev/invitation-uid"
	// UserLabel is a hash of the username (usernames do not fit label values).
	UserLabel = "invites.rolecall.dev/user"
	// UsernameAnnotation is the username itself, for people reading the binding.
	UsernameAnnotation = "invites.rolecall.dev/username"
	// InvitationAnnotation is "<namespace>/<name>" of the invitation that made the binding.
	InvitationAnnotation = "invites.rolecall.dev/invitation"
	// ExpiresAtAnnotation is when the grant ends (RFC 3339), for invitations with a
	// grantDuration; the grant expiry controller deletes the binding then.
	ExpiresAtAnnotation = "invites.rolecall.dev/expires-at"
	// IDPGroupAnnotation names the identity provider group the grant also adds the user to.
	IDPGroupAnnotation = "invites.rolecall.dev/idp-group"
	// IDPGroupAddedAnnotation records when the identity provider hook confirmed the
	// membership (RFC 3339); its presence means a "remove" is owed when the binding goes.
	IDPGroupAddedAnnotation = "invites.rolecall.dev/idp-group-added-at"
	// IDPGroupFinalizer holds a binding with an idpGroup until the hook has removed the
	// membership, so that ending a grant in Kubernetes also ends it in the identity provider.
	IDPGroupFinalizer = "invites.rolecall.dev/idp-group"
	// ManagedByLabel marks every binding rolecall makes; the manager caches only these.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is ManagedByLabel's value.
	ManagedByValue = "rolecall"
)

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings;clusterrolebindings,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;clusterroles,verbs=bind

// Made names one binding that holds a grant.
type Made struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	RoleRef   string `json:"roleRef"`
}

// UserHash is the label value that identifies a user on bindings.
func UserHash(username string) string {
	sum := sha256.Sum256([]byte(username))
	return hex.EncodeToString(sum[:16])
}

// name is the same for the same invitation, user and grant, every time.
func name(inv *invitesv1alpha1.Invitation, username string, grant int) string {
	sum := sha256.Sum256([]byte(string(inv.UID) + "\x00" + username + "\x00" + strconv.Itoa(grant)))
	return "rolecall-" + hex.EncodeToString(sum[:10])
}

// Holds says whether the user holds every binding of the invitation. Bindings have
// deterministic names, so this is a read by name per grant, which a cache can answer: a
// binding made a moment ago and not yet seen belongs to a redemption the invitation's
// status already records. Some but not all means a redemption is still being made, or
// failed and is being undone: not held.
func Holds(ctx context.Context, c client.Reader, inv *invitesv1alpha1.Invitation, username string) (bool, error) {
	for i, g := range inv.Spec.Grants {
		obj, _ := desired(inv, username, i, g)
		err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// Remove deletes the user's bindings from this invitation, for a redemption that could
// not make all of them: a use that is given back leaves no grant behind.
func Remove(ctx context.Context, c client.Client, inv *invitesv1alpha1.Invitation, username string) error {
	for i, g := range inv.Spec.Grants {
		obj, _ := desired(inv, username, i, g)
		if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("grants[%d]: %w", i, err)
		}
	}
	return nil
}

// ExpiresAt is when grants made at redeemedAt end, or nil when they do not.
func ExpiresAt(inv *invitesv1alpha1.Invitation, redeemedAt time.Time) *time.Time {
	if inv.Spec.GrantDuration == nil {
		return nil
	}
	at := redeemedAt.Add(inv.Spec.GrantDuration.Duration).UTC().Truncate(time.Second)
	return &at
}

// Ensure makes every grant's binding for the user, leaving those that exist, and returns
// them all. expiresAt, when set, is recorded on each binding for the expiry controller.
func Ensure(ctx context.Context, c client.Client, inv *invitesv1alpha1.Invitation, username string, expiresAt *time.Time) ([]Made, error) {
	made := make([]Made, 0, len(inv.Spec.Grants))
	for i, g := range inv.Spec.Grants {
		obj, m := desired(inv, username, i, g)
		if expiresAt != nil {
			obj.GetAnnotations()[ExpiresAtAnnotation] = expiresAt.Format(time.RFC3339)
		}
		if err := createOrConfirm(ctx, c, obj); err != nil {
			return made, fmt.Errorf("grants[%d]: %w", i, err)
		}
		made = append(made, m)
	}
	return made, nil
}

func desired(inv *invitesv1alpha1.Invitation, username string, i int, g invitesv1alpha1.Grant) (client.Object, Made) {
	meta := metav1.ObjectMeta{
		Name: name(inv, username, i),
		Labels: map[string]string{
			InvitationUIDLabel: string(inv.UID), UserLabel: UserHash(username),
			"app.kubernetes.io/managed-by": "rolecall",
		},
		Annotations: map[string]string{
			UsernameAnnotation:                username,
			"invites.rolecall.dev/invitation": inv.Namespace + "/" + inv.Name,
		},
	}
	if g.IDPGroup != "" {
		// Set at creation, never added later: a binding deleted a moment after it was made
		// still owes its "remove".
		meta.Annotations[IDPGroupAnnotation] = g.IDPGroup
		meta.Finalizers = []string{IDPGroupFinalizer}
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: username}}
	roleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: g.ClusterRole}
	if g.Role != "" {
		roleRef.Kind, roleRef.Name = "Role", g.Role
	}
	if g.ClusterWide {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: meta, Subjects: subjects, RoleRef: roleRef},
			Made{Kind: "ClusterRoleBinding", Name: meta.Name, RoleRef: roleRef.Kind + "/" + roleRef.Name}
	}
	meta.Namespace = g.Namespace
	if meta.Namespace == "" {
		meta.Namespace = inv.Namespace
	}
	return &rbacv1.RoleBinding{ObjectMeta: meta, Subjects: subjects, RoleRef: roleRef},
		Made{Kind: "RoleBinding", Name: meta.Name, Namespace: meta.Namespace, RoleRef: roleRef.Kind + "/" + roleRef.Name}
}

// createOrConfirm creates the binding, or confirms that the one already there is the same.
func createOrConfirm(ctx context.Context, c client.Client, want client.Object) error {
	err := c.Create(ctx, want)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	have := want.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(want), have); err != nil {
		return err
	}
	if !sameGrant(want, have) {
		return fmt.Errorf("%s %s exists and binds something else", have.GetObjectKind().GroupVersionKind().Kind, have.GetName())
	}
	return nil
}

func sameGrant(want, have client.Object) bool {
	switch w := want.(type) {
	case *rbacv1.RoleBinding:
		h := have.(*rbacv1.RoleBinding)
		return w.RoleRef == h.RoleRef && equality.Semantic.DeepEqual(w.Subjects, h.Subjects)
	case *rbacv1.ClusterRoleBinding:
		h := have.(*rbacv1.ClusterRoleBinding)
		return w.RoleRef == h.RoleRef && equality.Semantic.DeepEqual(w.Subjects, h.Subjects)
	}
	return false
}

// ReplaceOthers removes the user's bindings from other rolecall invitations in the scope of
// this one (the namespaces its grants land in, and the cluster if it grants cluster-wide):
// what `upgrade: Replace` promises. It returns how many it removed.
func ReplaceOthers(ctx context.Context, c client.Client, inv *invitesv1alpha1.Invitation, username string) (int, error) {
	removed := 0
	for _, scope := range scopes(inv) {
		n, err := deleteListed(ctx, c, c, scope.list, func(binding client.Object) bool {
			return binding.GetLabels()[InvitationUIDLabel] != string(inv.UID)
		}, scope.namespace, client.MatchingLabels{UserLabel: UserHash(username), ManagedByLabel: ManagedByValue})
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// scope is one place an invitation grants in: a namespace's RoleBindings, or the
// cluster's ClusterRoleBindings.
type scope struct {
	list      client.ObjectList
	namespace client.InNamespace
}

func scopes(inv *invitesv1alpha1.Invitation) []scope {
	var out []scope
	seen := map[string]bool{}
	for _, g := range inv.Spec.Grants {
		key, s := g.Namespace, scope{list: &rbacv1.RoleBindingList{}, namespace: client.InNamespace(g.Namespace)}
		switch {
		case g.ClusterWide:
			key, s = "", scope{list: &rbacv1.ClusterRoleBindingList{}}
		case g.Namespace == "":
			key, s.namespace = inv.Namespace, client.InNamespace(inv.Namespace)
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, s)
		}
	}
	return out
}

// RemoveAll deletes every binding the invitation made, for every user: what revokeGrants
// promises. It lists through reader (the manager's cache holds only rolecall's bindings)
// and deletes through writer. It returns how many it deleted.
func RemoveAll(ctx context.Context, reader client.Reader, writer client.Client, inv *invitesv1alpha1.Invitation) (int, error) {
	removed := 0
	for _, list := range []client.ObjectList{&rbacv1.RoleBindingList{}, &rbacv1.ClusterRoleBindingList{}} {
		n, err := deleteListed(ctx, reader, writer, list, func(binding client.Object) bool {
			return binding.GetDeletionTimestamp().IsZero()
		}, client.MatchingLabels{InvitationUIDLabel: string(inv.UID)})
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// deleteListed lists bindings through reader and deletes, through writer, those that
// selected says to. It returns how many it deleted.
func deleteListed(ctx context.Context, reader client.Reader, writer client.Client, list client.ObjectList,
	selected func(client.Object) bool, opts ...client.ListOption) (int, error) {
	if err := reader.List(ctx, list, opts...); err != nil {
		return 0, err
	}
	removed := 0
	err := meta.EachListItem(list, func(obj runtime.Object) error {
		binding := obj.(client.Object)
		if !selected(binding) {
			return nil
		}
		if err := writer.Delete(ctx, binding); client.IgnoreNotFound(err) != nil {
			return err
		}
		removed++
		return nil
	})
	return removed, err
}
