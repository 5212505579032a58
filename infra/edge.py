"""One origin for the browser: CloudFront serves the web app (web bucket), the API (API
Gateway, under /api/) and the slide data (data bucket, under /projects/), so the web app
needs no CORS and its chunk reads use HTTP range requests through the CDN cache.

Slide data is private: /projects/* only answers requests carrying CloudFront signed cookies,
which the API issues to project members (key pair: `python -m infra deploy` keeps the
private half in SSM Parameter Store; the public half is the `DataSigningPublicKey` parameter).
"""

from __future__ import annotations

from typing import Any

from histolabel.config import Settings
from infra.cfn import Resources, get_att, on_aws, ref, sub
from infra.functions import API_STAGE

# AWS-managed CloudFront policies (fixed ids, documented by AWS).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
CORS_S3_ORIGIN = "88a5eaf4-2fd4-4709-b370-b4c650ea3fcf"
SECURITY_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"


def _oac_bucket_policy(bucket: str, bucket_logical: str, prefix: str) -> dict[str, Any]:
    bucket_arn = f"arn:${{AWS::Partition}}:s3:::{bucket}"
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": ref(bucket_logical) if bucket_logical else bucket,
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "CloudFrontReads",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudfront.amazonaws.com"},
                        "Action": "s3:GetObject",
                        "Resource": sub(f"{bucket_arn}/{prefix}*"),
                        "Condition": {
                            "StringEquals": {
                                "AWS:SourceArn": sub(
                                    "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}"
                                )
                            }
                        },
                    },
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [sub(bucket_arn), sub(f"{bucket_arn}/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    },
                ],
            },
        },
    }


def edge(settings: Settings) -> Resources:
    p = settings.prefix
    api_cache_policy = {
        "Type": "AWS::CloudFront::CachePolicy",
        "Properties": {
            "CachePolicyConfig": {
                "Name": f"{p}-api",
                "Comment": "API: never cached, but the Authorization header and query reach the API",
                "MinTTL": 0,
                "DefaultTTL": 0,
                "MaxTTL": 1,
                "ParametersInCacheKeyAndForwardedToOrigin": {
                    "EnableAcceptEncodingGzip": True,
                    "EnableAcceptEncodingBrotli": True,
                    "HeadersConfig": {"HeaderBehavior": "whitelist", "Headers": ["Authorization"]},
                    "QueryStringsConfig": {"QueryStringBehavior": "all"},
                    "CookiesConfig": {"CookieBehavior": "none"},
                },
            }
        },
    }
    oac = {
        "Type": "AWS::CloudFront::OriginAccessControl",
        "Properties": {
            "OriginAccessControlConfig": {
                "Name": f"{p}-s3",
                "OriginAccessControlOriginType": "s3",
                "SigningBehavior": "always",
                "SigningProtocol": "sigv4",
            }
        },
    }
    public_key = {
        "Type": "AWS::CloudFront::PublicKey",
        "Properties": {
            "PublicKeyConfig": {
                # The key id is in the name: rotating makes a new key before the old one goes.
                "Name": sub(f"{p}-data-${{DataSigningKeyId}}"),
                "CallerReference": sub(f"{p}-data-${{DataSigningKeyId}}"),
                "EncodedKey": ref("DataSigningPublicKey"),
                "Comment": "verifies the signed cookies the API issues for slide data",
            }
        },
    }
    key_group = {
        "Type": "AWS::CloudFront::KeyGroup",
        "Properties": {"KeyGroupConfig": {"Name": f"{p}-data", "Items": [ref("DataSigningPublicKey0")]}},
    }
    s3_origin = {"S3OriginConfig": {"OriginAccessIdentity": ""}, "OriginAccessControlId": ref("OriginAccess")}
    distribution = {
        "Type": "AWS::CloudFront::Distribution",
        "Properties": {
            "DistributionConfig": {
                "Comment": f"HistoLabel {settings.stage}: web app, API and slide data on one origin",
                "Enabled": True,
                "HttpVersion": "http2and3",
                "IPV6Enabled": True,
                "PriceClass": "PriceClass_100",
                "DefaultRootObject": "index.html",
                "Origins": [
                    {"Id": "web", "DomainName": get_att("WebBucket", "RegionalDomainName"), **s3_origin},
                    {
                        "Id": "data",
                        "DomainName": sub(f"{settings.data_bucket}.s3.${{AWS::Region}}.${{AWS::URLSuffix}}"),
                        **s3_origin,
                    },
                    {
                        "Id": "api",
                        "DomainName": sub("${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}"),
                        "CustomOriginConfig": {
                            "OriginProtocolPolicy": "https-only",
                            "OriginSSLProtocols": ["TLSv1.2"],
                        },
                    },
                ],
                "DefaultCacheBehavior": {
                    "TargetOriginId": "web",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "CachePolicyId": CACHING_OPTIMIZED,
                    "ResponseHeadersPolicyId": SECURITY_HEADERS,
                    "Compress": True,
                },
                "CacheBehaviors": [
                    {
                        "PathPattern": f"/{API_STAGE}/*",
                        "TargetOriginId": "api",
                        "ViewerProtocolPolicy": "https-only",
                        "AllowedMethods": ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"],
                        "CachePolicyId": ref("ApiCachePolicy"),
                        "OriginRequestPolicyId": ALL_VIEWER_EXCEPT_HOST,
                        "Compress": True,
                    },
                    {
                        "PathPattern": "/projects/*",
                        "TargetOriginId": "data",
                        "ViewerProtocolPolicy": "https-only",
                        "AllowedMethods": ["GET", "HEAD", "OPTIONS"],
                        "CachePolicyId": CACHING_OPTIMIZED,
                        "OriginRequestPolicyId": CORS_S3_ORIGIN,
                        "TrustedKeyGroups": [ref("DataKeyGroup")],
                        "Compress": False,
                    },
                ],
                "ViewerCertificate": {"CloudFrontDefaultCertificate": True},
            }
        },
    }
    resources: Resources = {
        "ApiCachePolicy": api_cache_policy,
        "OriginAccess": oac,
        "DataSigningPublicKey0": public_key,
        "DataKeyGroup": key_group,
        "Distribution": distribution,
        "WebBucketPolicy": _oac_bucket_policy(settings.web_bucket, "WebBucket", ""),
        "DataBucketPolicy": _oac_bucket_policy(settings.data_bucket, "", "projects/"),
    }
    return {logical: on_aws(resource) for logical, resource in resources.items()}
