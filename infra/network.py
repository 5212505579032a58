"""A small VPC for Batch instances: public subnets (no NAT gateway to pay for) with an S3
gateway endpoint, so slide data never crosses the internet gateway. Admins with a VPC of
their own pass `--subnets` and `--security-group` instead (condition CreateNetwork)."""

from __future__ import annotations

from typing import Any

from infra.cfn import Resources, ref, tags

CREATE_NETWORK = "CreateNetwork"


def network(stage: str) -> Resources:
    t = tags(stage, "batch-network")
    resources: Resources = {
        "Vpc": {
            "Type": "AWS::EC2::VPC",
            "Properties": {
                "CidrBlock": "10.42.0.0/16",
                "EnableDnsHostnames": True,
                "EnableDnsSupport": True,
                "Tags": t,
            },
        },
        "InternetGateway": {"Type": "AWS::EC2::InternetGateway", "Properties": {"Tags": t}},
        "GatewayAttachment": {
            "Type": "AWS::EC2::VPCGatewayAttachment",
            "Properties": {"VpcId": ref("Vpc"), "InternetGatewayId": ref("InternetGateway")},
        },
        "PublicRouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("Vpc"), "Tags": t}},
        "DefaultRoute": {
            "Type": "AWS::EC2::Route",
            "DependsOn": "GatewayAttachment",
            "Properties": {
                "RouteTableId": ref("PublicRouteTable"),
                "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": ref("InternetGateway"),
            },
        },
        "S3Endpoint": {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "VpcId": ref("Vpc"),
                "ServiceName": {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"},
                "VpcEndpointType": "Gateway",
                "RouteTableIds": [ref("PublicRouteTable")],
            },
        },
        "BatchSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "Batch job instances: no inbound, outbound HTTPS only",
                "VpcId": ref("Vpc"),
                "SecurityGroupEgress": [
                    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}
                ],
                "Tags": t,
            },
        },
    }
    for i in range(2):
        resources[f"PublicSubnet{i}"] = {
            "Type": "AWS::EC2::Subnet",
            "Properties": {
                "VpcId": ref("Vpc"),
                "CidrBlock": f"10.42.{16 * i}.0/20",
                "AvailabilityZone": {"Fn::Select": [i, {"Fn::GetAZs": ""}]},
                "MapPublicIpOnLaunch": True,
                "Tags": t,
            },
        }
        resources[f"PublicSubnet{i}Routes"] = {
            "Type": "AWS::EC2::SubnetRouteTableAssociation",
            "Properties": {"SubnetId": ref(f"PublicSubnet{i}"), "RouteTableId": ref("PublicRouteTable")},
        }
    return {logical: {**r, "Condition": CREATE_NETWORK} for logical, r in resources.items()}


NETWORK_PARAMETERS: dict[str, dict[str, Any]] = {
    "SubnetIds": {
        "Type": "CommaDelimitedList",
        "Default": "",
        "Description": "subnets for Batch instances (outbound internet or VPC endpoints); empty: make a VPC",
    },
    "SecurityGroupId": {
        "Type": "String",
        "Default": "",
        "Description": "with SubnetIds: the instances' group",
    },
}
NETWORK_CONDITIONS = {CREATE_NETWORK: {"Fn::Equals": [{"Fn::Join": ["", ref("SubnetIds")]}, ""]}}
SUBNETS = {"Fn::If": [CREATE_NETWORK, [ref("PublicSubnet0"), ref("PublicSubnet1")], ref("SubnetIds")]}
SECURITY_GROUPS = [{"Fn::If": [CREATE_NETWORK, ref("BatchSecurityGroup"), ref("SecurityGroupId")]}]
