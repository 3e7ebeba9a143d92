#!/bin/bash
# User data for an Amazon Linux 2023 instance of the example shop, behind an ALB that ends
# TLS and checks /ping, with launch-gate checking /health before the instance is in service.
# It expects the app's code in /opt/shop/app (baked into the AMI, or fetched here) and the
# secret key in SSM Parameter Store under /shop/django-secret-key.
set -euo pipefail

# AL2023's /usr/bin/python3 is 3.9 for the life of the release; Django 5.2 needs 3.10 or
# later, so install a newer one beside it (never repoint /usr/bin/python3).
dnf install -y python3.12 nginx
id shop >/dev/null 2>&1 || useradd --system --home-dir /opt/shop shop
python3.12 -m venv /opt/shop/venv
/opt/shop/venv/bin/pip install --quiet -r /opt/shop/app/requirements.txt

# The private IP for ALLOWED_HOSTS: the app reads it from the metadata service with the
# IMDSv2 token flow (ALLOWED_HOSTS_FROM_IMDS=1). It could as well be given here:
#   token=$(curl -sS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
#   ip=$(curl -sS -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/local-ipv4)
#   echo "INSTANCE_PRIVATE_IP=$ip" >> /etc/shop.env
secret=$(aws ssm get-parameter --with-decryption --name /shop/django-secret-key \
  --query Parameter.Value --output text)
install -m 600 -o shop /dev/null /etc/shop.env
cat > /etc/shop.env <<ENV
DJANGO_SECRET_KEY=$secret
DJANGO_ALLOWED_HOSTS=.example.com
ALLOWED_HOSTS_FROM_IMDS=1
DJANGO_DB_PATH=/opt/shop/db.sqlite3
SHOP_CURRENCY=EUR
ENV

cp /opt/shop/app/deploy/nginx.conf /etc/nginx/conf.d/shop.conf
cp /opt/shop/app/deploy/shop.service /etc/systemd/system/shop.service
chown -R shop /opt/shop
systemctl daemon-reload
systemctl enable --now shop nginx
