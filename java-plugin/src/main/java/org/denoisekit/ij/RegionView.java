package org.denoisekit.ij;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Dimension;
import java.awt.Font;
import java.awt.Graphics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.event.MouseAdapter;
import java.awt.event.MouseEvent;
import java.awt.image.BufferedImage;
import java.util.Arrays;
import javax.swing.JComponent;

/**
 * The panel's before/after view of the preview region: side by side, a swipe (drag the
 * divider), the residual (input minus output, with its own symmetric contrast so that it
 * is never a black square), or the result alone. Before and after share the image's
 * display range, so brightness compares across them.
 */
final class RegionView extends JComponent {
    private static final long serialVersionUID = 1L;
    enum Mode {
        SIDE_BY_SIDE("before | after"), SWIPE("swipe"), RESIDUAL("residual"), AFTER("after");

        final String label;

        Mode(String label) {
            this.label = label;
        }

        @Override
        public String toString() {
            return label;
        }
    }

    private Mode mode = Mode.SIDE_BY_SIDE;
    private float[] before;
    private float[] after;
    private int w;
    private int h;
    private double lo;
    private double hi;
    /** The residual's display range is [-residualSpan, residualSpan]. */
    private double residualSpan = 1;
    /** Swipe divider, as a fraction of the width. */
    private double divider = 0.5;
    private String message = "Preview: tick Preview to see the region denoised";

    RegionView() {
        setPreferredSize(new Dimension(560, 250));
        MouseAdapter drag = new MouseAdapter() {
            @Override
            public void mousePressed(MouseEvent e) {
                moveDivider(e);
            }

            @Override
            public void mouseDragged(MouseEvent e) {
                moveDivider(e);
            }
        };
        addMouseListener(drag);
        addMouseMotionListener(drag);
    }

    private void moveDivider(MouseEvent e) {
        if (mode != Mode.SWIPE || before == null) return;
        int[] box = box(1);
        divider = Math.max(0, Math.min(1, (e.getX() - box[0]) / (double) box[2]));
        repaint();
    }

    void setMode(Mode m) {
        mode = m;
        repaint();
    }

    Mode mode() {
        return mode;
    }

    /** Shows a new preview; {@code lo, hi}: the image's display range. */
    void show(float[] before, float[] after, int w, int h, double lo, double hi) {
        this.before = before;
        this.after = after;
        this.w = w;
        this.h = h;
        this.lo = lo;
        this.hi = hi > lo ? hi : lo + 1;
        residualSpan = residualSpan(before, after);
        message = null;
        repaint();
    }

    void showMessage(String text) {
        message = text;
        repaint();
    }

    /** The residual's display half-range: its 99.5th percentile of |input - output|. */
    static double residualSpan(float[] before, float[] after) {
        float[] r = new float[before.length];
        int n = 0;
        for (int i = 0; i < r.length; i++) {
            float d = Math.abs(before[i] - after[i]);
            if (!Float.isNaN(d) && !Float.isInfinite(d)) r[n++] = d;
        }
        if (n == 0) return 1;
        Arrays.sort(r, 0, n);
        double span = r[Math.min(n - 1, (int) (0.995 * n))];
        return span > 0 ? span : Math.max(r[n - 1], 1e-6);
    }

    double residualSpan() {
        return residualSpan;
    }

    /** The residual as drawn: grey levels 0..255, 128 where nothing was removed. */
    byte[] residualGreys() {
        byte[] g = new byte[w * h];
        for (int i = 0; i < g.length; i++) g[i] = (byte) grey(before[i] - after[i], -residualSpan, residualSpan);
        return g;
    }

    private static int grey(double v, double lo, double hi) {
        if (Double.isNaN(v)) return 0;
        return (int) Math.max(0, Math.min(255, Math.round((v - lo) / (hi - lo) * 255)));
    }

    private BufferedImage picture(boolean residual, float[] px) {
        BufferedImage im = new BufferedImage(w, h, BufferedImage.TYPE_BYTE_GRAY);
        byte[] data = ((java.awt.image.DataBufferByte) im.getRaster().getDataBuffer()).getData();
        if (residual) {
            System.arraycopy(residualGreys(), 0, data, 0, data.length);
        } else {
            for (int i = 0; i < data.length; i++) data[i] = (byte) grey(px[i], lo, hi);
        }
        return im;
    }

    /** x, y, width, height of tile {@code i} of {@code n} side by side, aspect kept. */
    private int[] box(int n) {
        int gap = 6, pad = 18;
        int availW = (getWidth() - gap * (n - 1)) / n, availH = getHeight() - pad;
        double s = Math.min(availW / (double) w, availH / (double) h);
        if (s > 1) s = Math.floor(s);
        int bw = Math.max(1, (int) (w * s)), bh = Math.max(1, (int) (h * s));
        int x0 = (getWidth() - (bw * n + gap * (n - 1))) / 2;
        return new int[] {x0, pad, bw, bh, gap};
    }

    @Override
    protected void paintComponent(Graphics g0) {
        Graphics2D g = (Graphics2D) g0;
        g.setColor(new Color(0x30, 0x30, 0x30));
        g.fillRect(0, 0, getWidth(), getHeight());
        g.setFont(getFont().deriveFont(Font.PLAIN, 11f));
        if (before == null || message != null) {
            g.setColor(Color.white);
            g.drawString(message == null ? "" : message, 8, 16);
            if (before == null) return;
        }
        g.setRenderingHint(RenderingHints.KEY_INTERPOLATION, RenderingHints.VALUE_INTERPOLATION_NEAREST_NEIGHBOR);
        g.setColor(Color.white);
        if (mode == Mode.SIDE_BY_SIDE) {
            int[] b = box(2);
            g.drawImage(picture(false, before), b[0], b[1], b[2], b[3], null);
            g.drawImage(picture(false, after), b[0] + b[2] + b[4], b[1], b[2], b[3], null);
            g.drawString("before", b[0], 13);
            g.drawString("after", b[0] + b[2] + b[4], 13);
        } else if (mode == Mode.SWIPE) {
            int[] b = box(1);
            int cut = (int) Math.round(divider * b[2]);
            BufferedImage a = picture(false, before), c = picture(false, after);
            g.drawImage(a, b[0], b[1], b[0] + cut, b[1] + b[3], 0, 0, (int) Math.round(divider * w), h, null);
            g.drawImage(c, b[0] + cut, b[1], b[0] + b[2], b[1] + b[3], (int) Math.round(divider * w), 0, w, h, null);
            g.setColor(Color.yellow);
            g.setStroke(new BasicStroke(2));
            g.drawLine(b[0] + cut, b[1], b[0] + cut, b[1] + b[3]);
            g.drawString("before  |  after (drag the line)", b[0], 13);
        } else if (mode == Mode.RESIDUAL) {
            int[] b = box(1);
            g.drawImage(picture(true, null), b[0], b[1], b[2], b[3], null);
            g.drawString("residual (input - output): black -" + DenoiseCommand.fmt(residualSpan) + ", grey 0, white +"
                    + DenoiseCommand.fmt(residualSpan) + "; structure here is removed signal", b[0], 13);
        } else {
            int[] b = box(1);
            g.drawImage(picture(false, after), b[0], b[1], b[2], b[3], null);
            g.drawString("after", b[0], 13);
        }
    }
}
