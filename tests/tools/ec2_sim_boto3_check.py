"""Checks that an unmodified boto3 client works against the EC2 simulator (`just ec2-sim-check`).

Usage: python3 ec2_sim_boto3_check.py http://127.0.0.1:PORT

Creates a VPC, a subnet, a security group and instances, creates and attaches ENIs, and expects
EC2's faithful errors: a device-index conflict, the type's attachment limit, DryRun (HTTP 412
DryRunOperation when the call would succeed, changing nothing; the real error when it would
fail), a forced detach of a device the guest holds (the index then blocked until the instance
is stopped and started), and throttling.
"""

import json
import sys
import time
import urllib.request

import boto3
import botocore.config
from botocore.exceptions import ClientError


def expect_error(code, call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as error:
        got = error.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {error}"
        return error
    raise AssertionError(f"expected {code}, the call succeeded")


def control(endpoint, path, body=None):
    """A call to the simulator's /_sim/ control endpoint; the answer's JSON, if any."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(endpoint + path, data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(request) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def eni_status(ec2, eni):
    return ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["Status"]


def check_dry_run(ec2, first, attachment, spare):
    """DryRun answers DryRunOperation (HTTP 412) and changes nothing, or the real error."""
    error = expect_error("DryRunOperation", ec2.detach_network_interface, AttachmentId=attachment, DryRun=True)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 412, error
    assert eni_status(ec2, first) == "in-use", "a dry-run detach detaches nothing"
    expect_error("DryRunOperation", ec2.delete_network_interface, NetworkInterfaceId=spare, DryRun=True)
    assert eni_status(ec2, spare) == "available", "a dry-run delete deletes nothing"
    print(f"dry run: {error.response['Error']['Message']}")
    expect_error(
        "InvalidAttachmentID.NotFound",
        ec2.detach_network_interface,
        AttachmentId="eni-attach-00000000000000000",
        DryRun=True,
    )
    print("dry run of a call that would fail: InvalidAttachmentID.NotFound")


def check_force(endpoint, ec2, instance, eni, spare):
    """A detach the guest holds, forced; the index then blocked until a stop and a start."""
    control(endpoint, "/_sim/guests", {"instance_id": instance})
    attachment = ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance, DeviceIndex=1)
    ec2.detach_network_interface(AttachmentId=attachment["AttachmentId"])
    time.sleep(0.2)
    assert eni_status(ec2, eni) == "detaching", "the guest holds the device"
    ec2.detach_network_interface(AttachmentId=attachment["AttachmentId"], Force=True)
    assert eni_status(ec2, eni) == "available", "a forced detach completes at once"
    error = expect_error(
        "InvalidParameterValue", ec2.attach_network_interface, NetworkInterfaceId=spare, InstanceId=instance, DeviceIndex=1
    )
    print(f"forced detach, then the index is blocked: {error.response['Error']['Message']}")
    ec2.stop_instances(InstanceIds=[instance])
    ec2.start_instances(InstanceIds=[instance])
    ec2.attach_network_interface(NetworkInterfaceId=spare, InstanceId=instance, DeviceIndex=1)
    assert control(endpoint, "/_sim/stats")["forced_detach_calls"] == 1
    print("after a stop and a start the index takes an attachment again")


def main(endpoint):
    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        # One attempt, so that errors (throttling included) reach this script unretried.
        config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(
        VpcId=vpc,
        CidrBlock="10.0.1.0/24",
        AvailabilityZone="us-east-1a",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "multus"}]}],
    )["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="multus", Description="multus", VpcId=vpc)["GroupId"]
    found = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["multus"]}])["Subnets"]
    assert [s["SubnetId"] for s in found] == [subnet], found

    run = ec2.run_instances(ImageId="ami-12345678", InstanceType="m5.large", MinCount=2, MaxCount=2, SubnetId=subnet)
    instance, other = (i["InstanceId"] for i in run["Instances"])
    print(f"instances {[i['InstanceId'] for i in run['Instances']]} in {subnet} of {vpc}")

    def create_eni(token):
        created = ec2.create_network_interface(SubnetId=subnet, Groups=[group], ClientToken=token)
        return created["NetworkInterface"]["NetworkInterfaceId"]

    first = create_eni("boto3-check-1")
    assert create_eni("boto3-check-1") == first, "ClientToken makes create idempotent"
    second, third = create_eni("boto3-check-2"), create_eni("boto3-check-3")
    attachment = ec2.attach_network_interface(NetworkInterfaceId=first, InstanceId=instance, DeviceIndex=1)
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=first,
        Attachment={"AttachmentId": attachment["AttachmentId"], "DeleteOnTermination": True},
    )
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[first])["NetworkInterfaces"][0]
    assert eni["Attachment"]["InstanceId"] == instance and eni["Attachment"]["DeleteOnTermination"], eni
    print(f"attached {first} ({eni['MacAddress']}) at device index 1")

    error = expect_error(
        "InvalidParameterValue", ec2.attach_network_interface, NetworkInterfaceId=second, InstanceId=instance, DeviceIndex=1
    )
    print(f"device-index conflict: {error.response['Error']['Message']}")
    ec2.attach_network_interface(NetworkInterfaceId=second, InstanceId=instance, DeviceIndex=2)
    error = expect_error(
        "AttachmentLimitExceeded", ec2.attach_network_interface, NetworkInterfaceId=third, InstanceId=instance, DeviceIndex=3
    )
    print(f"attachment limit: {error.response['Error']['Message']}")
    expect_error("InvalidNetworkInterface.InUse", ec2.delete_network_interface, NetworkInterfaceId=first)
    check_dry_run(ec2, first, attachment["AttachmentId"], third)
    check_force(endpoint, ec2, other, third, create_eni("boto3-check-4"))

    # Unfiltered DescribeInstances draws from a bucket of 50 refilled at 10 per second.
    for calls in range(1, 500):
        try:
            ec2.describe_instances()
        except ClientError as error:
            assert error.response["Error"]["Code"] == "RequestLimitExceeded", error
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503, error
            print(f"throttled after {calls} unfiltered DescribeInstances calls: RequestLimitExceeded")
            break
    else:
        raise AssertionError("never throttled")
    print("boto3 check passed")


if __name__ == "__main__":
    main(sys.argv[1])
