"""One origin for the browser: CloudFront serves the web app (web bucket) and the API (API
Gateway, under /api/).

Slide data (pyramid tiles, label chunks) is not served through CloudFront: the browser reads
it with presigned S3 URLs the API hands to project members (GET .../data-urls), range
requests straight to the bucket. A CDN would cache chunks near viewers, but a consortium's
few sites each read different slides and regions, so the hit rate would be low while signed
cookies or URLs would be a second authorization path beside the API's membership check.
The signed-cookie path that was here was never used by the web app and has been removed.
"""

from __future__ import annotations

from typing import Any

from histolabel.config import Settings
from infra.cfn import Resources, get_att, on_aws, ref, sub
from infra.functions import API_STAGE

# AWS-managed CloudFront policies (fixed ids, documented by AWS).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
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
    s3_origin = {"S3OriginConfig": {"OriginAccessIdentity": ""}, "OriginAccessControlId": ref("OriginAccess")}
    distribution = {
        "Type": "AWS::CloudFront::Distribution",
        "Properties": {
            "DistributionConfig": {
                "Comment": f"HistoLabel {settings.stage}: web app and API on one origin",
                "Enabled": True,
                "HttpVersion": "http2and3",
                "IPV6Enabled": True,
                "PriceClass": "PriceClass_100",
                "DefaultRootObject": "index.html",
                "Origins": [
                    {"Id": "web", "DomainName": get_att("WebBucket", "RegionalDomainName"), **s3_origin},
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
                ],
                "ViewerCertificate": {"CloudFrontDefaultCertificate": True},
            }
        },
    }
    resources: Resources = {
        "ApiCachePolicy": api_cache_policy,
        "OriginAccess": oac,
        "Distribution": distribution,
        "WebBucketPolicy": _oac_bucket_policy(settings.web_bucket, "WebBucket", ""),
    }
    return {logical: on_aws(resource) for logical, resource in resources.items()}
