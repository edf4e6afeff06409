//! The column descriptions of the server-side tables. `printers.go` takes
//! them from the Go types' `SwaggerDoc()`, which is the same text as the
//! OpenAPI field descriptions k8s-openapi carries; a test checks each one
//! against k8s-openapi's schema so they cannot drift.
//!
//! Where `printers.go` quotes a type k8s-openapi no longer has
//! (extensions/v1beta1, batch/v1beta1, discovery/v1beta1), the text comes
//! from its apps/v1, batch/v1 or discovery/v1 successor.

pub const OBJECT_META_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub const OBJECT_META_CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
pub const POD_STATUS_POD_IP: &str = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
pub const POD_SPEC_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
pub const POD_STATUS_NOMINATED_NODE_NAME: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
pub const POD_SPEC_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
pub const POD_SPEC_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
pub const REPLICA_SET_SPEC_REPLICAS: &str = "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
pub const REPLICA_SET_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
pub const REPLICA_SET_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
pub const REPLICA_SET_STATUS_READY_REPLICAS: &str =
    "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.";
pub const DAEMON_SET_STATUS_DESIRED_NUMBER_SCHEDULED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
pub const DAEMON_SET_STATUS_CURRENT_NUMBER_SCHEDULED: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
pub const DAEMON_SET_STATUS_NUMBER_READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
pub const DAEMON_SET_STATUS_UPDATED_NUMBER_SCHEDULED: &str =
    "The total number of nodes that are running updated daemon pod";
pub const DAEMON_SET_STATUS_NUMBER_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
pub const DAEMON_SET_SPEC_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
pub const DEPLOYMENT_STATUS_UPDATED_REPLICAS: &str = "Total number of non-terminating pods targeted by this deployment that have the desired template spec.";
pub const DEPLOYMENT_STATUS_AVAILABLE_REPLICAS: &str = "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.";
pub const DEPLOYMENT_SPEC_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";
pub const JOB_STATUS_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
pub const JOB_SPEC_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
pub const CRON_JOB_SPEC_SCHEDULE: &str =
    "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
pub const CRON_JOB_SPEC_TIME_ZONE: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
pub const CRON_JOB_SPEC_SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
pub const CRON_JOB_STATUS_ACTIVE: &str = "A list of pointers to currently running jobs.";
pub const CRON_JOB_STATUS_LAST_SCHEDULE_TIME: &str =
    "Information when was the last time the job was successfully scheduled.";
pub const SERVICE_SPEC_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
pub const SERVICE_SPEC_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
pub const SERVICE_SPEC_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
pub const SERVICE_SPEC_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
pub const SERVICE_SPEC_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";
pub const ENDPOINTS_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";
pub const NODE_SYSTEM_INFO_KUBELET_VERSION: &str = "Kubelet Version reported by the node.";
pub const NODE_STATUS_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
pub const NODE_SYSTEM_INFO_OS_IMAGE: &str =
    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
pub const NODE_SYSTEM_INFO_KERNEL_VERSION: &str =
    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
pub const NODE_SYSTEM_INFO_CONTAINER_RUNTIME_VERSION: &str = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
pub const EVENT_LAST_TIMESTAMP: &str =
    "The time at which the most recent occurrence of this event was recorded.";
pub const EVENT_TYPE: &str =
    "Type of this event (Normal, Warning), new types could be added in the future";
pub const EVENT_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
pub const EVENT_INVOLVED_OBJECT: &str = "The object that this event is about.";
pub const OBJECT_REFERENCE_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
pub const EVENT_SOURCE: &str =
    "The component reporting this event. Should be a short machine understandable string.";
pub const EVENT_MESSAGE: &str = "A human-readable description of the status of this operation.";
pub const EVENT_FIRST_TIMESTAMP: &str =
    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
pub const EVENT_COUNT: &str = "The number of times this event has occurred.";
pub const SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
pub const SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
pub const SERVICE_ACCOUNT_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret";
pub const CONFIG_MAP_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
pub const LEASE_SPEC_HOLDER_IDENTITY: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
pub const PRIORITY_CLASS_VALUE: &str = "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.";
pub const PRIORITY_CLASS_GLOBAL_DEFAULT: &str = "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.";
pub const PRIORITY_CLASS_PREEMPTION_POLICY: &str = "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.";
pub const ENDPOINT_SLICE_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.";
pub const ENDPOINT_SLICE_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.";
pub const ENDPOINT_SLICE_ENDPOINTS: &str = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, coordination::v1 as coordination,
    };
    use k8s_openapi::api::{
        core::v1 as core, discovery::v1 as discovery, scheduling::v1 as scheduling,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

    /// The description of `field` in the OpenAPI schema of `T`.
    fn schema<T: schemars::JsonSchema>(field: &str) -> String {
        let schema = serde_json::to_value(schemars::schema_for!(T)).expect("schema serializes");
        schema
            .pointer(&format!("/properties/{field}/description"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_else(|| panic!("no description for {field}"))
            .to_string()
    }

    #[test]
    fn descriptions_match_the_openapi_schema() {
        let cases = [
            (OBJECT_META_NAME, schema::<meta::ObjectMeta>("name")),
            (
                OBJECT_META_CREATION_TIMESTAMP,
                schema::<meta::ObjectMeta>("creationTimestamp"),
            ),
            (POD_STATUS_POD_IP, schema::<core::PodStatus>("podIP")),
            (POD_SPEC_NODE_NAME, schema::<core::PodSpec>("nodeName")),
            (
                POD_STATUS_NOMINATED_NODE_NAME,
                schema::<core::PodStatus>("nominatedNodeName"),
            ),
            (
                POD_SPEC_READINESS_GATES,
                schema::<core::PodSpec>("readinessGates"),
            ),
            (
                POD_SPEC_NODE_SELECTOR,
                schema::<core::PodSpec>("nodeSelector"),
            ),
            (
                REPLICA_SET_SPEC_REPLICAS,
                schema::<apps::ReplicaSetSpec>("replicas"),
            ),
            (
                REPLICA_SET_SPEC_SELECTOR,
                schema::<apps::ReplicaSetSpec>("selector"),
            ),
            (
                REPLICA_SET_STATUS_REPLICAS,
                schema::<apps::ReplicaSetStatus>("replicas"),
            ),
            (
                REPLICA_SET_STATUS_READY_REPLICAS,
                schema::<apps::ReplicaSetStatus>("readyReplicas"),
            ),
            (
                DAEMON_SET_STATUS_DESIRED_NUMBER_SCHEDULED,
                schema::<apps::DaemonSetStatus>("desiredNumberScheduled"),
            ),
            (
                DAEMON_SET_STATUS_CURRENT_NUMBER_SCHEDULED,
                schema::<apps::DaemonSetStatus>("currentNumberScheduled"),
            ),
            (
                DAEMON_SET_STATUS_NUMBER_READY,
                schema::<apps::DaemonSetStatus>("numberReady"),
            ),
            (
                DAEMON_SET_STATUS_UPDATED_NUMBER_SCHEDULED,
                schema::<apps::DaemonSetStatus>("updatedNumberScheduled"),
            ),
            (
                DAEMON_SET_STATUS_NUMBER_AVAILABLE,
                schema::<apps::DaemonSetStatus>("numberAvailable"),
            ),
            (
                DAEMON_SET_SPEC_SELECTOR,
                schema::<apps::DaemonSetSpec>("selector"),
            ),
            (
                DEPLOYMENT_STATUS_UPDATED_REPLICAS,
                schema::<apps::DeploymentStatus>("updatedReplicas"),
            ),
            (
                DEPLOYMENT_STATUS_AVAILABLE_REPLICAS,
                schema::<apps::DeploymentStatus>("availableReplicas"),
            ),
            (
                DEPLOYMENT_SPEC_SELECTOR,
                schema::<apps::DeploymentSpec>("selector"),
            ),
            (
                JOB_STATUS_SUCCEEDED,
                schema::<batch::JobStatus>("succeeded"),
            ),
            (JOB_SPEC_SELECTOR, schema::<batch::JobSpec>("selector")),
            (
                CRON_JOB_SPEC_SCHEDULE,
                schema::<batch::CronJobSpec>("schedule"),
            ),
            (
                CRON_JOB_SPEC_TIME_ZONE,
                schema::<batch::CronJobSpec>("timeZone"),
            ),
            (
                CRON_JOB_SPEC_SUSPEND,
                schema::<batch::CronJobSpec>("suspend"),
            ),
            (
                CRON_JOB_STATUS_ACTIVE,
                schema::<batch::CronJobStatus>("active"),
            ),
            (
                CRON_JOB_STATUS_LAST_SCHEDULE_TIME,
                schema::<batch::CronJobStatus>("lastScheduleTime"),
            ),
            (SERVICE_SPEC_TYPE, schema::<core::ServiceSpec>("type")),
            (
                SERVICE_SPEC_CLUSTER_IP,
                schema::<core::ServiceSpec>("clusterIP"),
            ),
            (
                SERVICE_SPEC_EXTERNAL_IPS,
                schema::<core::ServiceSpec>("externalIPs"),
            ),
            (SERVICE_SPEC_PORTS, schema::<core::ServiceSpec>("ports")),
            (
                SERVICE_SPEC_SELECTOR,
                schema::<core::ServiceSpec>("selector"),
            ),
            (ENDPOINTS_SUBSETS, schema::<core::Endpoints>("subsets")),
            (
                NODE_SYSTEM_INFO_KUBELET_VERSION,
                schema::<core::NodeSystemInfo>("kubeletVersion"),
            ),
            (
                NODE_STATUS_ADDRESSES,
                schema::<core::NodeStatus>("addresses"),
            ),
            (
                NODE_SYSTEM_INFO_OS_IMAGE,
                schema::<core::NodeSystemInfo>("osImage"),
            ),
            (
                NODE_SYSTEM_INFO_KERNEL_VERSION,
                schema::<core::NodeSystemInfo>("kernelVersion"),
            ),
            (
                NODE_SYSTEM_INFO_CONTAINER_RUNTIME_VERSION,
                schema::<core::NodeSystemInfo>("containerRuntimeVersion"),
            ),
            (EVENT_LAST_TIMESTAMP, schema::<core::Event>("lastTimestamp")),
            (EVENT_TYPE, schema::<core::Event>("type")),
            (EVENT_REASON, schema::<core::Event>("reason")),
            (
                EVENT_INVOLVED_OBJECT,
                schema::<core::Event>("involvedObject"),
            ),
            (
                OBJECT_REFERENCE_FIELD_PATH,
                schema::<core::ObjectReference>("fieldPath"),
            ),
            (EVENT_SOURCE, schema::<core::Event>("source")),
            (EVENT_MESSAGE, schema::<core::Event>("message")),
            (
                EVENT_FIRST_TIMESTAMP,
                schema::<core::Event>("firstTimestamp"),
            ),
            (EVENT_COUNT, schema::<core::Event>("count")),
            (SECRET_TYPE, schema::<core::Secret>("type")),
            (SECRET_DATA, schema::<core::Secret>("data")),
            (
                SERVICE_ACCOUNT_SECRETS,
                schema::<core::ServiceAccount>("secrets"),
            ),
            (CONFIG_MAP_DATA, schema::<core::ConfigMap>("data")),
            (
                LEASE_SPEC_HOLDER_IDENTITY,
                schema::<coordination::LeaseSpec>("holderIdentity"),
            ),
            (
                PRIORITY_CLASS_VALUE,
                schema::<scheduling::PriorityClass>("value"),
            ),
            (
                PRIORITY_CLASS_GLOBAL_DEFAULT,
                schema::<scheduling::PriorityClass>("globalDefault"),
            ),
            (
                PRIORITY_CLASS_PREEMPTION_POLICY,
                schema::<scheduling::PriorityClass>("preemptionPolicy"),
            ),
            (
                ENDPOINT_SLICE_ADDRESS_TYPE,
                schema::<discovery::EndpointSlice>("addressType"),
            ),
            (
                ENDPOINT_SLICE_PORTS,
                schema::<discovery::EndpointSlice>("ports"),
            ),
            (
                ENDPOINT_SLICE_ENDPOINTS,
                schema::<discovery::EndpointSlice>("endpoints"),
            ),
        ];
        for (i, (ours, theirs)) in cases.iter().enumerate() {
            assert_eq!(ours, theirs, "description #{i}");
        }
    }
}
